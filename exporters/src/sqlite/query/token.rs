//! The opaque `next_token`: a keyset cursor holding the last row's sort value and rowid
//! (and the sort it belongs to), as base64url of a small JSON object. Rows are ordered by
//! (sort value, rowid): the sort indexes hold exactly that, so a page needs no extra sort.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use teletrace_core::storage::{Sort, SortField, StorageError};

/// Where the previous page ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Cursor {
    /// Sort field: `s` (start time) or `d` (duration).
    f: String,
    /// Ascending.
    a: bool,
    /// The last row's sort value.
    pub v: i64,
    /// The last row's rowid in `spans` (stable: the store never runs `VACUUM`, the one
    /// thing that renumbers rowids; the attribute postings rely on the same).
    pub r: i64,
}

fn field_code(field: SortField) -> &'static str {
    match field {
        SortField::StartTime => "s",
        SortField::Duration => "d",
    }
}

impl Cursor {
    /// The cursor after the row `rowid` with sort value `value`.
    pub(crate) fn new(sort: Sort, value: i64, rowid: i64) -> Self {
        Cursor {
            f: field_code(sort.field).into(),
            a: sort.ascending,
            v: value,
            r: rowid,
        }
    }

    /// The token text.
    pub(crate) fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    /// Reads a token given with a request sorted by `sort`.
    pub(crate) fn decode(token: &str, sort: Sort) -> Result<Self, StorageError> {
        let bad = |why: &str| StorageError::BadRequest(format!("invalid next_token: {why}"));
        let bytes = URL_SAFE_NO_PAD
            .decode(token.trim().trim_end_matches('='))
            .map_err(|_| bad("not a token this store issued"))?;
        let cursor: Cursor =
            serde_json::from_slice(&bytes).map_err(|_| bad("not a token this store issued"))?;
        if cursor.f != field_code(sort.field) || cursor.a != sort.ascending {
            return Err(bad("it belongs to a search with another sort order"));
        }
        if cursor.r <= 0 {
            return Err(bad("not a token this store issued"));
        }
        Ok(cursor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() {
        let sort = Sort {
            field: SortField::Duration,
            ascending: true,
        };
        let cursor = Cursor::new(sort, 42, 7);
        assert_eq!(Cursor::decode(&cursor.encode(), sort).unwrap(), cursor);
        let other = Sort {
            field: SortField::StartTime,
            ascending: true,
        };
        assert!(Cursor::decode(&cursor.encode(), other).is_err());
        assert!(Cursor::decode("not a token!", sort).is_err());
        assert!(Cursor::decode(&URL_SAFE_NO_PAD.encode(b"{}"), sort).is_err());
        let no_row = URL_SAFE_NO_PAD.encode(br#"{"f":"d","a":true,"v":1,"r":0}"#);
        assert!(Cursor::decode(&no_row, sort).is_err());
    }
}
