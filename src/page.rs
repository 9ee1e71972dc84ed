//! Keyset pagination: [`PageRequest`] in, [`Page`] out.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Where a listing continues from: an opaque position taken from
/// [`Page::next`]. Serializes as a bare integer, so a host can hand it to its
/// client and take it back.
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::ToSchema),
    schema(
        description = "Where a listing continues from: pass a page's `next` as `after` for the next page."
    )
)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Cursor(i64);

impl Cursor {
    pub(crate) const fn new(key: i64) -> Cursor {
        Cursor(key)
    }

    pub(crate) const fn key(self) -> i64 {
        self.0
    }
}

/// Which page of a listing to return: the first one, or the one after a
/// [`Cursor`], with at most `limit` items.
///
/// Listings use keyset pagination: a page is found by an index seek from the
/// cursor, not by skipping rows, so every page costs the same and rows
/// inserted meanwhile never shift a page.
///
/// # Example
///
/// ```
/// use liteshop::PageRequest;
///
/// let first = PageRequest::first(20);
/// assert_eq!(first.limit(), 20);
/// assert!(first.cursor().is_none());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageRequest {
    after: Option<Cursor>,
    limit: u32,
}

impl PageRequest {
    /// The largest page a listing returns.
    pub const MAX_LIMIT: u32 = 100;

    /// The first page, with at most `limit` items.
    pub const fn first(limit: u32) -> PageRequest {
        PageRequest { after: None, limit }
    }

    /// The page after `cursor` (from [`Page::next`]), with at most `limit`
    /// items.
    pub const fn after(cursor: Cursor, limit: u32) -> PageRequest {
        PageRequest {
            after: Some(cursor),
            limit,
        }
    }

    /// The cursor this page starts after, if any.
    pub const fn cursor(&self) -> Option<Cursor> {
        self.after
    }

    /// The most items the page may hold.
    pub const fn limit(&self) -> u32 {
        self.limit
    }

    /// Checks that the limit is 1 to [`PageRequest::MAX_LIMIT`].
    pub(crate) fn validate(self) -> Result<PageRequest> {
        if (1..=Self::MAX_LIMIT).contains(&self.limit) {
            Ok(self)
        } else {
            Err(Error::InvalidPageSize {
                requested: self.limit,
                max: Self::MAX_LIMIT,
            })
        }
    }
}

impl Default for PageRequest {
    /// The first page of 20.
    fn default() -> PageRequest {
        PageRequest::first(20)
    }
}

/// One page of a listing.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page<T> {
    /// The items, in the listing's order.
    #[cfg_attr(feature = "openapi", schema(inline = false))]
    pub items: Vec<T>,
    /// Where the next page starts, or `None` when this is the last page.
    pub next: Option<Cursor>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` fetched rows: the extra row, if
    /// present, only proves that a next page exists and is dropped.
    pub(crate) fn from_rows(mut rows: Vec<T>, limit: u32, key: impl Fn(&T) -> i64) -> Page<T> {
        let limit = limit as usize;
        let next = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(|last| Cursor::new(key(last)))
        } else {
            None
        };
        Page { items: rows, next }
    }
}
