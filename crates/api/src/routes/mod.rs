//! Resource modules. Each has its DTOs (`<Resource>In/Out/Patch`), handlers and `router()`.

pub(crate) mod agents;
pub(crate) mod api_keys;
pub(crate) mod audit;
pub(crate) mod auth;
pub(crate) mod calls;
pub(crate) mod health;
pub(crate) mod queues;
pub(crate) mod recordings;
pub(crate) mod settings;
pub(crate) mod tenants;
pub(crate) mod trunks;
pub(crate) mod users;
pub(crate) mod webhooks;

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ApiResult};

/// Cursor pagination parameters shared by every list route.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct PageParams {
    /// Opaque cursor from a previous page's `next_cursor`.
    pub(crate) cursor: Option<String>,
    /// Page size, 1 to 200 (default 50).
    pub(crate) limit: Option<u32>,
}

impl PageParams {
    pub(crate) fn parse(&self) -> ApiResult<(Option<db::page::Cursor>, usize)> {
        let cursor = match &self.cursor {
            None => None,
            Some(text) => Some(
                db::page::Cursor::decode(text)
                    .ok_or_else(|| ApiError::field("cursor", "not a cursor returned by this API"))?,
            ),
        };
        let limit = self.limit.unwrap_or(50);
        if !(1..=200).contains(&limit) {
            return Err(ApiError::field("limit", "must be between 1 and 200"));
        }
        Ok((cursor, limit as usize))
    }
}

/// One page of a list.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PageOut<T> {
    pub(crate) items: Vec<T>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub(crate) next_cursor: Option<String>,
}

impl<T> PageOut<T> {
    pub(crate) fn from_page<R>(page: db::page::Page<R>, map: impl FnMut(R) -> T) -> Self {
        Self { items: page.items.into_iter().map(map).collect(), next_cursor: page.next.map(|c| c.encode()) }
    }
}

pub(crate) async fn commit(tx: db::Tx) -> ApiResult<()> {
    tx.commit().await.map_err(|e| ApiError::from(db::DbError::from(e)))
}
