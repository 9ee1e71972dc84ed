//! A user's cart: its lines, added, changed and removed.

use tracing::debug;

use super::Shop;
use crate::cart::{self, Cart, CartLine};
use crate::error::Result;
use crate::ids::{CartItemId, ProductId, UserId};
use crate::{user, validate};
// Named by the docs only.
#[cfg(doc)]
use {crate::error::Error, crate::money::Money};

impl Shop {
    /// The cart of `user`, with each line's product name, current unit price
    /// and total, and the cart total (seed flow 4). One query, one snapshot.
    ///
    /// A line whose total does not fit in [`Money`] is listed with no total
    /// (and the cart then has none either), so its owner can still see and
    /// remove it.
    ///
    /// # Failure
    ///
    /// [`Error::InvalidId`], [`Error::UserNotFound`].
    pub fn cart(&self, user: UserId) -> Result<Cart> {
        let user = user.validate()?;
        self.inner.store.read(|tx| cart::get(tx, user))
    }

    /// Puts `quantity` units of `product` into the cart of `user` as a new
    /// line (seed flow 5). A product already in the cart is refused: change
    /// that line with [`Shop::set_cart_quantity`]. Stock is not checked here;
    /// it is checked and reserved when an order is placed.
    ///
    /// Checks, in order: ids valid and quantity 1 to the limit → the user
    /// exists → the product exists → the product is not in the cart yet.
    ///
    /// # Failure
    ///
    /// [`Error::InvalidId`], [`Error::InvalidQuantity`],
    /// [`Error::UserNotFound`], [`Error::ProductNotFound`],
    /// [`Error::AlreadyInCart`].
    pub fn add_to_cart(&self, user: UserId, product: ProductId, quantity: u32) -> Result<CartLine> {
        let user = user.validate()?;
        let product = product.validate()?;
        let quantity = validate::quantity(quantity, self.inner.limits.max_cart_quantity)?;
        let line = self.write_user(user, move |tx, now| {
            user::ensure_exists(tx, user)?;
            cart::add(tx, product, quantity, now)
        })?;
        debug!(user = %user, product = %product, item = %line.id, quantity, "added to cart");
        Ok(line)
    }

    /// Sets the quantity of the line `item` in the cart of `user`.
    ///
    /// Checks, in order: ids valid and quantity 1 to the limit → the line
    /// exists and is this user's.
    ///
    /// # Failure
    ///
    /// [`Error::InvalidId`], [`Error::InvalidQuantity`],
    /// [`Error::CartItemNotFound`] (also for another user's line).
    pub fn set_cart_quantity(
        &self,
        user: UserId,
        item: CartItemId,
        quantity: u32,
    ) -> Result<CartLine> {
        let user = user.validate()?;
        let item = item.validate()?;
        let quantity = validate::quantity(quantity, self.inner.limits.max_cart_quantity)?;
        let line = self.write_user(user, move |tx, _| cart::set_quantity(tx, item, quantity))?;
        debug!(user = %user, item = %item, quantity, "cart quantity set");
        Ok(line)
    }

    /// Removes the line `item` from the cart of `user` (seed flow 6).
    ///
    /// Checks, in order: ids valid → the line exists and is this user's.
    ///
    /// # Failure
    ///
    /// [`Error::InvalidId`], [`Error::CartItemNotFound`] (also for another
    /// user's line).
    pub fn remove_from_cart(&self, user: UserId, item: CartItemId) -> Result<()> {
        let user = user.validate()?;
        let item = item.validate()?;
        self.write_user(user, move |tx, _| cart::remove(tx, item))?;
        debug!(user = %user, item = %item, "removed from cart");
        Ok(())
    }
}
