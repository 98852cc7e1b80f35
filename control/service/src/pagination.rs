//! Pagination, filtering and sorting helpers for list endpoints: `?page=1&per_page=50&sort=-created_at`.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ControlError, Result};

/// Largest `per_page`.
pub const MAX_PER_PAGE: i64 = 500;
/// Largest `page` (with [`MAX_PER_PAGE`] the offset stays far from overflowing).
pub const MAX_PAGE: i64 = 1_000_000;

/// Page and sort parameters of a list request.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Page number, from 1 (default 1).
    pub page: Option<i64>,
    /// Items per page, 1..=500 (default 50).
    pub per_page: Option<i64>,
    /// Sort key; prefix with `-` for descending (the allowed keys are listed per endpoint).
    pub sort: Option<String>,
}

/// A validated page request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// Page number from 1.
    pub page: i64,
    /// Items per page.
    pub per_page: i64,
}

impl Page {
    /// Rows to skip.
    pub fn offset(&self) -> i64 {
        (self.page - 1).saturating_mul(self.per_page)
    }
}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// Ascending.
    Asc,
    /// Descending.
    Desc,
}

impl PageQuery {
    /// Validates page and per_page.
    pub fn page(&self) -> Result<Page> {
        let page = self.page.unwrap_or(1);
        let per_page = self.per_page.unwrap_or(50);
        if !(1..=MAX_PAGE).contains(&page) {
            return Err(ControlError::invalid(
                "page",
                format!("must be between 1 and {MAX_PAGE}"),
            ));
        }
        if !(1..=MAX_PER_PAGE).contains(&per_page) {
            return Err(ControlError::invalid(
                "per_page",
                format!("must be between 1 and {MAX_PER_PAGE}"),
            ));
        }
        Ok(Page { page, per_page })
    }

    /// The sort key (one of `allowed`, default `default`) and direction.
    pub fn sort<'a>(&self, allowed: &[&'a str], default: (&'a str, Dir)) -> Result<(&'a str, Dir)> {
        let Some(s) = self.sort.as_deref().filter(|s| !s.is_empty()) else {
            return Ok(default);
        };
        let (key, dir) = match s.strip_prefix('-') {
            Some(k) => (k, Dir::Desc),
            None => (s, Dir::Asc),
        };
        allowed
            .iter()
            .find(|a| **a == key)
            .map(|a| (*a, dir))
            .ok_or_else(|| {
                ControlError::invalid(
                    "sort",
                    format!("unknown sort key {key:?} (one of: {})", allowed.join(", ")),
                )
            })
    }
}

/// One page of a list.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Paginated<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// Items matching the filter on all pages.
    pub total: i64,
    /// This page's number.
    pub page: i64,
    /// Items per page.
    pub per_page: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_and_sorts_are_validated() {
        let q = PageQuery {
            page: Some(3),
            per_page: Some(20),
            sort: Some("-name".into()),
        };
        assert_eq!(q.page().unwrap().offset(), 40);
        assert_eq!(
            q.sort(&["name"], ("name", Dir::Asc)).unwrap(),
            ("name", Dir::Desc)
        );
        let bad = PageQuery {
            page: Some(0),
            ..Default::default()
        };
        assert!(bad.page().unwrap_err().to_string().contains("page"));
        let bad = PageQuery {
            per_page: Some(501),
            ..Default::default()
        };
        assert!(bad.page().is_err());
        // A page far out of range is refused, not an overflowing offset (a 500 before).
        let huge = PageQuery {
            page: Some(i64::MAX),
            ..Default::default()
        };
        let err = huge.page().unwrap_err().to_string();
        assert!(err.contains("page") && err.contains("1000000"), "{err}");
        let bad = PageQuery {
            sort: Some("email".into()),
            ..Default::default()
        };
        assert!(
            bad.sort(&["name"], ("name", Dir::Asc))
                .unwrap_err()
                .to_string()
                .contains("email")
        );
    }
}
