//! A request as the fake TrackVia recorded it ([`RecordedRequest`]), and the lookups of a
//! header or query parameter shared with the decision logic.

use std::time::SystemTime;

/// Where the token of a request came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenSource {
    /// `Authorization: Bearer <token>`.
    BearerHeader,
    /// `access_token=<token>` in the query string.
    QueryParameter,
}

/// One request as the fake received it, with what it resolved to.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// HTTP method, e.g. `GET`.
    pub method: String,
    /// Path without the query string.
    pub path: String,
    /// Decoded query pairs in order.
    pub query: Vec<(String, String)>,
    /// All headers in order, names in lower case, values decoded lossily as UTF-8.
    pub headers: Vec<(String, String)>,
    /// When the request head was received.
    pub received_at: SystemTime,
    /// The `user_key` query parameter.
    pub api_key: Option<String>,
    /// The token, from the header when both are present.
    pub token: Option<String>,
    /// Where [`RecordedRequest::token`] came from.
    pub token_source: Option<TokenSource>,
    /// The numeric `account-id` header; `None` for the primary account (or an invalid header).
    pub account_id: Option<u64>,
    /// Status answered; `None` when the connection was dropped instead.
    pub status: Option<u16>,
}

impl RecordedRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header_in(&self.headers, name)
    }

    /// The first value of query parameter `name`.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        query_in(&self.query, name)
    }
}

/// The first value of header `name` (case-insensitive) among `headers`.
pub(crate) fn header_in<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The first value of query parameter `name` among `query`.
pub(crate) fn query_in<'a>(query: &'a [(String, String)], name: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}
