use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use uuid::Uuid;

use super::Id;

/// Most order lines one page of orders holds (orders have up to 100 lines each): a page stops before the
/// order that would take it over, so that no response can approach Lambda's 6 MB limit (the worst case is
/// worked out by a test of the HTTP edge).
pub const MAX_PAGE_LINES: usize = 1000;

/// Default and largest page sizes of every list endpoint.
pub const DEFAULT_LIMIT: u32 = 20;
pub const MAX_LIMIT: u32 = 100;

/// Keyset position in a list: the id of the last item of the previous page. Opaque to clients (base64url of
/// the list it belongs to and the id), so its encoding can change without breaking them; a cursor of one list
/// is refused by another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor<K>(pub K);

impl<K: Id> Cursor<K> {
    pub fn encode(&self) -> String {
        encode_tagged(K::LIST, *self.0.uuid().as_bytes())
    }

    pub fn decode(value: &str) -> Result<Self, String> {
        let bytes = decode_tagged(value, K::LIST, "cursor belongs to another list")?;
        Ok(Self(K::from_uuid(Uuid::from_bytes(bytes))))
    }
}

/// An opaque cursor: base64url of the tag of what it belongs to, and 16 bytes of position.
pub(super) fn encode_tagged(tag: u8, position: [u8; 16]) -> String {
    let mut bytes = [0; 17];
    bytes[0] = tag;
    bytes[1..].copy_from_slice(&position);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The position of a cursor [`encode_tagged`] made with `tag`; `elsewhere` when it was made for something
/// else.
pub(super) fn decode_tagged(value: &str, tag: u8, elsewhere: &str) -> Result<[u8; 16], String> {
    let bytes = URL_SAFE_NO_PAD
        .decode(value)
        .ok()
        .filter(|bytes| bytes.len() == 17)
        .ok_or_else(|| "cursor is not one this API issued".to_owned())?;
    if bytes[0] != tag {
        return Err(elsewhere.to_owned());
    }
    Ok(bytes[1..].try_into().expect("16 bytes"))
}

/// Something a list holds, with the id that is its keyset position.
pub trait Listed {
    type Key: Id;

    fn key(&self) -> Self::Key;
}

/// Which page of a list of `K`-identified items to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest<K> {
    pub limit: u32,
    pub after: Option<Cursor<K>>,
}

impl<K> Default for PageRequest<K> {
    fn default() -> Self {
        Self {
            limit: DEFAULT_LIMIT,
            after: None,
        }
    }
}

/// Parses a page size.
pub fn parse_limit(value: &str) -> Result<u32, String> {
    value
        .parse::<u32>()
        .ok()
        .filter(|limit| (1..=MAX_LIMIT).contains(limit))
        .ok_or_else(|| format!("limit must be an integer from 1 to {MAX_LIMIT}"))
}

impl<K> PageRequest<K> {
    /// How many rows an adapter reads: one more than the page, to learn whether another page follows.
    pub fn fetch(&self) -> usize {
        self.limit as usize + 1
    }

    /// The id after which the page starts, if any.
    pub fn after(&self) -> Option<K>
    where
        K: Copy,
    {
        self.after.map(|cursor| cursor.0)
    }
}

/// One page of a list, with the cursor of the next page when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T: Listed> {
    pub items: Vec<T>,
    pub next_cursor: Option<Cursor<T::Key>>,
}

impl<T: Listed> Page<T> {
    /// Builds a page from up to `request.fetch()` rows in list order.
    pub fn from_rows(mut rows: Vec<T>, request: PageRequest<T::Key>) -> Self {
        let limit = request.limit as usize;
        let next_cursor = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(|last| Cursor(last.key()))
        } else {
            None
        };
        Self {
            items: rows,
            next_cursor,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{OrderId, ProductId, new_id};

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let cursor = Cursor(new_id::<ProductId>());
        assert_eq!(Cursor::decode(&cursor.encode()), Ok(cursor));
        assert!(Cursor::<ProductId>::decode("not a cursor").is_err());
        assert!(Cursor::<ProductId>::decode("AAAA").is_err());
    }

    #[test]
    fn a_cursor_of_one_list_is_refused_by_another() {
        let products = Cursor(new_id::<ProductId>()).encode();
        assert_eq!(
            Cursor::<OrderId>::decode(&products),
            Err("cursor belongs to another list".to_owned())
        );
    }

    #[test]
    fn limits_outside_one_to_a_hundred_are_refused() {
        assert_eq!(parse_limit("1"), Ok(1));
        assert_eq!(parse_limit("100"), Ok(100));
        assert!(parse_limit("0").is_err());
        assert!(parse_limit("101").is_err());
        assert!(parse_limit("ten").is_err());
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    struct Item(ProductId);

    impl Listed for Item {
        type Key = ProductId;

        fn key(&self) -> ProductId {
            self.0
        }
    }

    #[test]
    fn a_page_has_a_next_cursor_only_when_more_rows_follow() {
        let items: Vec<Item> = (0..3).map(|_| Item(new_id())).collect();
        let request = PageRequest {
            limit: 2,
            after: None,
        };
        let page = Page::from_rows(items.clone(), request);
        assert_eq!(page.items, items[..2]);
        assert_eq!(page.next_cursor, Some(Cursor(items[1].0)));

        let last = Page::from_rows(items[..2].to_vec(), request);
        assert_eq!(last.next_cursor, None);
    }
}
