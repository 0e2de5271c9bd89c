use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use uuid::Uuid;

/// Most order lines one page of orders holds (orders have up to 100 lines each): a page stops before the
/// order that would take it over, so that no response can approach Lambda's 6 MB limit (the worst case is
/// worked out by a test of the HTTP edge).
pub const MAX_PAGE_LINES: usize = 1000;

/// Default and largest page sizes of every list endpoint.
pub const DEFAULT_LIMIT: u32 = 20;
pub const MAX_LIMIT: u32 = 100;

/// Keyset position in a list: the id of the last item of the previous page. Opaque to clients (base64url),
/// so its encoding can change without breaking them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor(pub Uuid);

impl Cursor {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0.as_bytes())
    }

    pub fn decode(value: &str) -> Result<Self, String> {
        let bytes = URL_SAFE_NO_PAD
            .decode(value)
            .map_err(|_| "cursor is not one this API issued".to_owned())?;
        Uuid::from_slice(&bytes)
            .map(Self)
            .map_err(|_| "cursor is not one this API issued".to_owned())
    }
}

/// Which page of a list to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: u32,
    pub after: Option<Cursor>,
}

impl Default for PageRequest {
    fn default() -> Self {
        Self {
            limit: DEFAULT_LIMIT,
            after: None,
        }
    }
}

impl PageRequest {
    pub fn parse_limit(value: &str) -> Result<u32, String> {
        value
            .parse::<u32>()
            .ok()
            .filter(|limit| (1..=MAX_LIMIT).contains(limit))
            .ok_or_else(|| format!("limit must be an integer from 1 to {MAX_LIMIT}"))
    }

    /// How many rows an adapter reads: one more than the page, to learn whether another page follows.
    pub fn fetch(&self) -> usize {
        self.limit as usize + 1
    }
}

/// One page of a list, with the cursor of the next page when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<Cursor>,
}

impl Page<crate::domain::order::Order> {
    /// A page of orders from up to `request.fetch()` rows in list order, which also ends before the order
    /// that would take it over [`MAX_PAGE_LINES`] lines (always holding at least one order).
    pub fn of_orders(mut rows: Vec<crate::domain::order::Order>, request: PageRequest) -> Self {
        let mut lines = 0;
        let fits = rows
            .iter()
            .take_while(|order| {
                lines += order.lines.len();
                lines <= MAX_PAGE_LINES
            })
            .count()
            .max(1);
        if fits < rows.len() && fits < request.limit as usize {
            // Cut short by size: keep one more row so that `from_rows` sees there is a next page.
            rows.truncate(fits + 1);
            return Self::from_rows(
                rows,
                PageRequest {
                    limit: fits as u32,
                    ..request
                },
                |o| o.id,
            );
        }
        Self::from_rows(rows, request, |o| o.id)
    }
}

impl<T> Page<T> {
    /// Builds a page from up to `request.fetch()` rows in list order; `id` gives an item's keyset position.
    pub fn from_rows(mut rows: Vec<T>, request: PageRequest, id: impl Fn(&T) -> Uuid) -> Self {
        let limit = request.limit as usize;
        let next_cursor = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(|last| Cursor(id(last)))
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

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let cursor = Cursor(Uuid::now_v7());
        assert_eq!(Cursor::decode(&cursor.encode()), Ok(cursor));
        assert!(Cursor::decode("not a cursor").is_err());
        assert!(Cursor::decode("AAAA").is_err());
    }

    #[test]
    fn limits_outside_one_to_a_hundred_are_refused() {
        assert_eq!(PageRequest::parse_limit("1"), Ok(1));
        assert_eq!(PageRequest::parse_limit("100"), Ok(100));
        assert!(PageRequest::parse_limit("0").is_err());
        assert!(PageRequest::parse_limit("101").is_err());
        assert!(PageRequest::parse_limit("ten").is_err());
    }

    #[test]
    fn a_page_has_a_next_cursor_only_when_more_rows_follow() {
        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
        let request = PageRequest {
            limit: 2,
            after: None,
        };
        let page = Page::from_rows(ids.clone(), request, |id| *id);
        assert_eq!(page.items, ids[..2]);
        assert_eq!(page.next_cursor, Some(Cursor(ids[1])));

        let last = Page::from_rows(ids[..2].to_vec(), request, |id| *id);
        assert_eq!(last.next_cursor, None);
    }
}
