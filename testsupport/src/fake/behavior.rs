//! What the fake answers: the [`Behavior`] a credential is configured with, and the pure
//! translation of a behaviour into a reply.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use bytes::Bytes;

/// How the fake TrackVia answers a request made with one credential.
///
/// The bodies follow the two shapes TrackVia is documented to use (TrackVia's own
/// `{"errors","message","name","code"}` and the OAuth `{"error","error_description"}`), and
/// never contain the API key or the token of the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Behavior {
    /// 200 `application/json`: a JSON array of views for `/openapi/views`, of apps for
    /// `/openapi/apps`.
    Valid,
    /// 200 `application/json` with an empty array: the API user sees no views.
    ValidEmpty,
    /// 401, OAuth shape, `error_description` starting with `Access token expired`.
    Expired,
    /// 401, OAuth shape, `Invalid access token: ...` (the token was regenerated).
    Revoked,
    /// 401, OAuth shape, `Invalid access token: ...` (the token was deactivated).
    Deactivated,
    /// 401, OAuth shape, `Invalid access token: ...` (the token was never issued).
    UnknownToken,
    /// 401, TrackVia shape, `name: accessDenied`: the API user is inactive.
    InactiveUser,
    /// 403, TrackVia shape: authenticated, but the role lacks permission.
    Forbidden,
    /// 429 with a plain-text body, and a `Retry-After` header (seconds) when `Some`.
    RateLimited {
        /// Value of the `Retry-After` header, in seconds.
        retry_after: Option<u64>,
    },
    /// 500, TrackVia shape.
    ServerError,
    /// Any status with any body; `content_type` becomes the `Content-Type` header when set.
    Status {
        /// HTTP status code.
        code: u16,
        /// Body, sent as is.
        body: String,
        /// `Content-Type` header, none when `None`.
        content_type: Option<String>,
    },
    /// Answers like [`Behavior::Valid`] after the delay.
    Slow(Duration),
    /// Drops the connection without answering.
    CloseConnection,
    /// A redirect to `location` with the given 3xx status.
    Redirect {
        /// Value of the `Location` header.
        location: String,
        /// HTTP status code, e.g. 302.
        status: u16,
    },
    /// 200 `application/json` with a body of exactly `bytes` bytes sent with chunked
    /// transfer encoding (no `Content-Length`), so only a client that caps what it reads
    /// is protected. The body is a JSON empty array padded with spaces.
    HugeBody {
        /// Size of the body in bytes.
        bytes: usize,
    },
    /// 200 `application/json`, chunked: a JSON array of `count` views (about 100 bytes each),
    /// generated as it is sent, as a large account's `/openapi/views` answers.
    ManyViews {
        /// Number of views.
        count: usize,
    },
    /// 200 `application/json`, chunked: `bytes` bytes that are not JSON (an HTML page
    /// padded with text).
    NotJsonBody {
        /// Size of the body in bytes.
        bytes: usize,
    },
    /// 403 with the plain-text body `Authentication failed`: the answer of the 3scale
    /// gateway in front of TrackVia to a bad or unknown `user_key`.
    KeyNotAccepted,
}

/// The endpoints the fake serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Views,
    Apps,
}

/// A complete answer, ready to be written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

/// What the server does with a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    Reply(Reply),
    ReplyAfter(Duration, Reply),
    Close,
    Filler { bytes: usize },
    Views { count: usize },
    NotJson { bytes: usize },
}

impl Action {
    /// The status the client will see, `None` when the connection is dropped.
    pub fn status(&self) -> Option<u16> {
        match self {
            Action::Reply(reply) | Action::ReplyAfter(_, reply) => Some(reply.status),
            Action::Close => None,
            Action::Filler { .. } | Action::Views { .. } | Action::NotJson { .. } => Some(200),
        }
    }
}

const JSON: &str = "application/json;charset=UTF-8";
const TEXT: &str = "text/plain;charset=UTF-8";

const VIEWS: &str =
    r#"[{"id":52,"name":"Default TEST TABLE View","applicationName":"TEST APP","default":true}]"#;
const APPS: &str = r#"[{"id":1,"name":"CRM"}]"#;

impl Reply {
    fn new(status: u16, content_type: Option<&str>, body: impl Into<Bytes>) -> Reply {
        let headers = content_type
            .map(|ct| vec![("content-type".to_string(), ct.to_string())])
            .unwrap_or_default();
        Reply {
            status,
            headers,
            body: body.into(),
        }
    }

    fn with_header(mut self, name: &str, value: impl Into<String>) -> Reply {
        self.headers.push((name.to_string(), value.into()));
        self
    }
}

/// A 401 in the OAuth shape, as the token endpoint of a Spring-style server writes it.
fn oauth_invalid_token(description: &str) -> Reply {
    let body = serde_json::json!({"error": "invalid_token", "error_description": description});
    Reply::new(401, Some(JSON), body.to_string()).with_header(
        "www-authenticate",
        format!(r#"Bearer error="invalid_token", error_description="{description}""#),
    )
}

/// An error in TrackVia's own shape; `code` is a string there.
fn trackvia_error(status: u16, name: &str, message: &str) -> Reply {
    let body = serde_json::json!({
        "errors": [],
        "message": message,
        "name": name,
        "code": status.to_string(),
    });
    Reply::new(status, Some(JSON), body.to_string())
}

/// The 404 for anything but the two served endpoints.
pub(crate) fn not_found() -> Reply {
    trackvia_error(404, "notFound", "The requested resource was not found")
}

/// The 410 for an `api-version` header the fake does not speak.
pub(crate) fn version_mismatch() -> Reply {
    trackvia_error(410, "gone", "The requested API version is not supported")
}

/// The 400 for an `account-id` header that is not a number.
pub(crate) fn bad_account_id() -> Reply {
    trackvia_error(400, "badRequest", "account-id must be a numeric account id")
}

/// The 3scale gateway's answer to a missing or unknown `user_key`: plain text, not JSON.
pub(crate) fn authentication_failed() -> Behavior {
    Behavior::Status {
        code: 401,
        body: "Authentication failed".to_string(),
        content_type: Some(TEXT.to_string()),
    }
}

/// The answer to a request that carries an API key but no token at all.
pub(crate) fn token_missing() -> Behavior {
    Behavior::Status {
        code: 401,
        body: serde_json::json!({
            "error": "unauthorized",
            "error_description": "Full authentication is required to access this resource",
        })
        .to_string(),
        content_type: Some(JSON.to_string()),
    }
}

impl Behavior {
    /// What the server does for this behaviour on `endpoint`.
    pub(crate) fn action(&self, endpoint: Endpoint) -> Action {
        let valid = || {
            let body = match endpoint {
                Endpoint::Views => VIEWS,
                Endpoint::Apps => APPS,
            };
            Reply::new(200, Some(JSON), body)
        };
        let reply = match self {
            Behavior::Valid => valid(),
            Behavior::ValidEmpty => Reply::new(200, Some(JSON), "[]"),
            Behavior::Expired => {
                oauth_invalid_token("Access token expired: the token passed its expiry date")
            }
            Behavior::Revoked => {
                oauth_invalid_token("Invalid access token: the token has been regenerated")
            }
            Behavior::Deactivated => {
                oauth_invalid_token("Invalid access token: the token has been deactivated")
            }
            Behavior::UnknownToken => {
                oauth_invalid_token("Invalid access token: the token is not recognised")
            }
            Behavior::InactiveUser => {
                trackvia_error(401, "accessDenied", "The API user is inactive")
            }
            Behavior::Forbidden => trackvia_error(403, "accessDenied", "Access is denied"),
            Behavior::RateLimited { retry_after } => {
                let reply = Reply::new(429, Some(TEXT), "Usage limit exceeded");
                match retry_after {
                    Some(seconds) => reply.with_header("retry-after", seconds.to_string()),
                    None => reply,
                }
            }
            Behavior::ServerError => {
                trackvia_error(500, "internalError", "An unexpected error occurred")
            }
            Behavior::Status {
                code,
                body,
                content_type,
            } => Reply::new(*code, content_type.as_deref(), body.clone()),
            Behavior::Slow(delay) => return Action::ReplyAfter(*delay, valid()),
            Behavior::CloseConnection => return Action::Close,
            Behavior::Redirect { location, status } => {
                Reply::new(*status, None, Bytes::new()).with_header("location", location.clone())
            }
            Behavior::HugeBody { bytes } => return Action::Filler { bytes: *bytes },
            Behavior::ManyViews { count } => return Action::Views { count: *count },
            Behavior::NotJsonBody { bytes } => return Action::NotJson { bytes: *bytes },
            Behavior::KeyNotAccepted => Reply::new(403, Some(TEXT), "Authentication failed"),
        };
        Action::Reply(reply)
    }
}

/// Error from parsing a behaviour name (see [`Behavior::from_str`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownBehavior(pub String);

impl fmt::Display for UnknownBehavior {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown behaviour {:?}; expected one of valid, empty, expired, revoked, deactivated, \
             unknown, inactive-user, forbidden, rate-limited[=SECS], server-error, slow=SECS, \
             close, status=CODE, redirect=URL, huge=BYTES, views=COUNT, not-json=BYTES, bad-key",
            self.0
        )
    }
}

impl std::error::Error for UnknownBehavior {}

impl FromStr for Behavior {
    type Err = UnknownBehavior;

    /// Parses the names the `fake-trackvia` example takes on its command line.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let unknown = || UnknownBehavior(s.to_string());
        let (name, arg) = match s.split_once('=') {
            Some((name, arg)) => (name, Some(arg)),
            None => (s, None),
        };
        let number = |arg: Option<&str>| -> Result<u64, UnknownBehavior> {
            arg.and_then(|a| a.parse().ok()).ok_or_else(unknown)
        };
        let behavior = match (name, arg) {
            ("valid", None) => Behavior::Valid,
            ("empty", None) => Behavior::ValidEmpty,
            ("expired", None) => Behavior::Expired,
            ("revoked", None) => Behavior::Revoked,
            ("deactivated", None) => Behavior::Deactivated,
            ("unknown", None) => Behavior::UnknownToken,
            ("inactive-user", None) => Behavior::InactiveUser,
            ("forbidden", None) => Behavior::Forbidden,
            ("rate-limited", None) => Behavior::RateLimited { retry_after: None },
            ("rate-limited", arg) => Behavior::RateLimited {
                retry_after: Some(number(arg)?),
            },
            ("server-error", None) => Behavior::ServerError,
            ("slow", arg) => Behavior::Slow(Duration::from_secs(number(arg)?)),
            ("close", None) => Behavior::CloseConnection,
            ("status", arg) => Behavior::Status {
                code: u16::try_from(number(arg)?).map_err(|_| unknown())?,
                body: String::new(),
                content_type: None,
            },
            ("redirect", Some(location)) if !location.is_empty() => Behavior::Redirect {
                location: location.to_string(),
                status: 302,
            },
            ("views", arg) => Behavior::ManyViews {
                count: usize::try_from(number(arg)?).map_err(|_| unknown())?,
            },
            ("not-json", arg) => Behavior::NotJsonBody {
                bytes: usize::try_from(number(arg)?).map_err(|_| unknown())?,
            },
            ("bad-key", None) => Behavior::KeyNotAccepted,
            ("huge", arg) => Behavior::HugeBody {
                bytes: usize::try_from(number(arg)?).map_err(|_| unknown())?,
            },
            _ => return Err(unknown()),
        };
        Ok(behavior)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(b: &Behavior, endpoint: Endpoint) -> Reply {
        match b.action(endpoint) {
            Action::Reply(r) => r,
            other => panic!("expected a plain reply, got {other:?}"),
        }
    }

    fn json(r: &Reply) -> serde_json::Value {
        serde_json::from_slice(&r.body).expect("body is JSON")
    }

    #[test]
    fn valid_bodies_depend_on_the_endpoint() {
        let views = json(&reply(&Behavior::Valid, Endpoint::Views));
        assert_eq!(views[0]["id"], 52);
        assert_eq!(views[0]["default"], true);
        let apps = json(&reply(&Behavior::Valid, Endpoint::Apps));
        assert_eq!(apps[0]["name"], "CRM");
    }

    #[test]
    fn expiry_is_detectable_by_the_sdk_substring() {
        let r = reply(&Behavior::Expired, Endpoint::Views);
        assert_eq!(r.status, 401);
        let description = json(&r)["error_description"].as_str().map(str::to_owned);
        assert!(description.is_some_and(|d| d.starts_with("Access token expired")));
        for b in [
            Behavior::Revoked,
            Behavior::Deactivated,
            Behavior::UnknownToken,
        ] {
            let d = json(&reply(&b, Endpoint::Views))["error_description"].clone();
            assert!(
                d.as_str()
                    .is_some_and(|d| d.starts_with("Invalid access token"))
            );
        }
    }

    #[test]
    fn trackvia_shape_has_a_string_code() {
        let r = reply(&Behavior::Forbidden, Endpoint::Apps);
        assert_eq!(r.status, 403);
        assert_eq!(json(&r)["code"], "403");
        assert_eq!(json(&r)["name"], "accessDenied");
    }

    #[test]
    fn names_parse() {
        assert_eq!("valid".parse(), Ok(Behavior::Valid));
        assert_eq!(
            "rate-limited=7".parse(),
            Ok(Behavior::RateLimited {
                retry_after: Some(7)
            })
        );
        assert_eq!("slow=3".parse(), Ok(Behavior::Slow(Duration::from_secs(3))));
        assert!("slow".parse::<Behavior>().is_err());
        assert!("valid=1".parse::<Behavior>().is_err());
        assert!("nonsense".parse::<Behavior>().is_err());
    }
}
