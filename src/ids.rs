//! One id newtype per entity, so that ids of different entities cannot be
//! mixed up: passing a [`ProductId`] where a [`UserId`] is wanted does not
//! compile.
//!
//! ```compile_fail,E0308
//! fn wants_user(_: liteshop::UserId) {}
//! wants_user(liteshop::ProductId::new(1));
//! ```

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::db::{FromValue, ToValue, Value, ValueRef};
use crate::error::{Entity, Error, Result};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $entity:expr) => {
        $(#[$doc])*
        ///
        /// A thin wrapper over the SQLite rowid. Any `i64` can be wrapped (a
        /// host parses ids from its own input), but only positive ids can
        /// name a row: the `Shop` refuses zero and negative ids with
        /// [`Error::InvalidId`] before it touches the database.
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(
            description = "An id: a positive integer."
        ))]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(i64);

        impl $name {
            /// Wraps a raw id.
            pub const fn new(id: i64) -> Self {
                Self(id)
            }

            /// The raw id.
            pub const fn get(self) -> i64 {
                self.0
            }

            /// Checks that the id can name a row (it is positive).
            #[allow(dead_code, reason = "not every id is taken as input")]
            pub(crate) fn validate(self) -> Result<Self> {
                if self.0 > 0 {
                    Ok(self)
                } else {
                    Err(Error::InvalidId { entity: $entity, id: self.0 })
                }
            }
        }

        impl From<i64> for $name {
            fn from(id: i64) -> Self {
                Self(id)
            }
        }

        impl From<$name> for i64 {
            fn from(id: $name) -> i64 {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl ToValue for $name {
            fn to_value(&self) -> ValueRef<'_> {
                ValueRef::Integer(self.0)
            }
        }

        impl FromValue for $name {
            fn from_value(value: &Value) -> std::result::Result<Self, String> {
                i64::from_value(value).map(Self)
            }
        }
    };
}

id_type!(
    /// Identifies a user.
    UserId,
    Entity::User
);
id_type!(
    /// Identifies a product.
    ProductId,
    Entity::Product
);
id_type!(
    /// Identifies one line of a user's cart.
    CartItemId,
    Entity::CartItem
);
id_type!(
    /// Identifies an order.
    OrderId,
    Entity::Order
);
id_type!(
    /// Identifies one payment attempt.
    PaymentId,
    Entity::Payment
);
id_type!(
    /// Identifies one entry of a payment's history.
    PaymentEventId,
    Entity::PaymentEvent
);
id_type!(
    /// Identifies one refund attempt.
    RefundId,
    Entity::Refund
);
id_type!(
    /// Identifies a coupon offer (one per campaign; each user holds at most
    /// one of it).
    CouponId,
    Entity::Coupon
);
id_type!(
    /// Identifies one entry of a user's balance ledger.
    LedgerEntryId,
    Entity::LedgerEntry
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_positive_ids_are_valid() {
        assert!(UserId::new(1).validate().is_ok());
        assert!(matches!(
            ProductId::new(0).validate(),
            Err(Error::InvalidId {
                entity: Entity::Product,
                id: 0
            })
        ));
        assert!(CartItemId::new(-3).validate().is_err());
    }

    #[test]
    fn ids_serialize_as_bare_integers() {
        assert_eq!(serde_json::to_string(&UserId::new(42)).unwrap(), "42");
        assert_eq!(
            serde_json::from_str::<ProductId>("7").unwrap(),
            ProductId::new(7)
        );
    }
}
