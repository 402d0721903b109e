//! What the fake TrackVia decides for one request: the options that shape its answers
//! ([`FakeOptions`]), the credentials configured per test, and the rules that turn a request
//! into an [`Action`], recording it on the way.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use super::behavior::{self, Action, Behavior, Endpoint};
use super::recorded::{RecordedRequest, TokenSource, header_in, query_in};

/// Settings for [`FakeTrackVia::start_with`]. `FakeOptions::default()` is what
/// [`FakeTrackVia::start`] uses.
#[derive(Clone, Debug, Default)]
pub struct FakeOptions {
    /// Port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// Where to write the CA certificate (PEM); `None` writes it into a temporary directory
    /// owned by the server and removed with it.
    pub ca_path: Option<PathBuf>,
    /// Names added to the server certificate besides `localhost` and `127.0.0.1`.
    pub extra_sans: Vec<String>,
    /// Answer for a known API key with a token that has no behaviour configured (for the
    /// requested account). `None`: 401 `Invalid access token`, as TrackVia does.
    pub default_behavior: Option<Behavior>,
    /// Answer for an API key that is not known. `None`: 401 with the plain-text body
    /// `Authentication failed`. (The real body is not documented.)
    pub unknown_key_behavior: Option<Behavior>,
    /// Answer for a request without `user_key`. `None`: same as an unknown key.
    pub missing_key_behavior: Option<Behavior>,
    /// Answer for a known API key without any token. `None`: 401, OAuth shape
    /// (`Full authentication is required ...`).
    pub missing_token_behavior: Option<Behavior>,
    /// When set, a request whose `api-version` header differs gets 410 Gone. A request without
    /// the header is always served.
    pub api_version: Option<String>,
}

/// Key of a configured behaviour: API key, token, account (`None` = primary).
type CredentialKey = (String, String, Option<u64>);

/// Everything the request handler reads and writes, behind one mutex so that counting and
/// recording are atomic with respect to each other.
#[derive(Default)]
pub(crate) struct State {
    pub(super) options: FakeOptions,
    pub(super) known_keys: HashSet<String>,
    pub(super) behaviors: HashMap<CredentialKey, Behavior>,
    pub(super) requests: Vec<RecordedRequest>,
}

/// What a request looks like to the decision logic.
pub(crate) struct IncomingRequest {
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
}

impl State {
    /// Decides the answer to `req`, records the request, and returns the action to perform.
    pub(crate) fn handle(&mut self, req: IncomingRequest) -> Action {
        let first_query = |name: &str| query_in(&req.query, name).map(str::to_string);
        let first_header = |name: &str| header_in(&req.headers, name).map(|v| v.trim().to_string());
        let api_key = first_query("user_key").filter(|k| !k.is_empty());
        let bearer = first_header("authorization").and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            let token = token.trim();
            (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_string())
        });
        let (token, token_source) = match bearer {
            Some(t) => (Some(t), Some(TokenSource::BearerHeader)),
            None => match first_query("access_token").filter(|t| !t.is_empty()) {
                Some(t) => (Some(t), Some(TokenSource::QueryParameter)),
                None => (None, None),
            },
        };
        let account_header = first_header("account-id");
        let account_id = account_header
            .as_deref()
            .and_then(|a| a.parse::<u64>().ok());

        // A header that is present but not a number is a client error, not the primary account.
        let account = match (&account_header, account_id) {
            (None, _) => Some(None),
            (Some(_), Some(id)) => Some(Some(id)),
            (Some(_), None) => None,
        };
        let action = self.decide(&req, api_key.as_deref(), token.as_deref(), account);

        self.requests.push(RecordedRequest {
            method: req.method,
            path: req.path,
            query: req.query,
            headers: req.headers,
            received_at: SystemTime::now(),
            api_key,
            token,
            token_source,
            account_id,
            status: action.status(),
        });
        action
    }

    fn decide(
        &self,
        req: &IncomingRequest,
        api_key: Option<&str>,
        token: Option<&str>,
        account: Option<Option<u64>>,
    ) -> Action {
        let endpoint = match (req.method.as_str(), req.path.as_str()) {
            ("GET", "/openapi/views") => Endpoint::Views,
            ("GET", "/openapi/apps") => Endpoint::Apps,
            _ => return Action::Reply(behavior::not_found()),
        };
        let opts = &self.options;
        let Some(api_key) = api_key else {
            let b = opts
                .missing_key_behavior
                .clone()
                .or_else(|| opts.unknown_key_behavior.clone())
                .unwrap_or_else(behavior::authentication_failed);
            return b.action(endpoint);
        };
        if !self.known_keys.contains(api_key) {
            let b = opts
                .unknown_key_behavior
                .clone()
                .unwrap_or_else(behavior::authentication_failed);
            return b.action(endpoint);
        }
        if let Some(wanted) = &opts.api_version {
            let sent = header_in(&req.headers, "api-version").map(str::trim);
            if sent.is_some_and(|sent| sent != wanted) {
                return Action::Reply(behavior::version_mismatch());
            }
        }
        let Some(token) = token else {
            let b = opts
                .missing_token_behavior
                .clone()
                .unwrap_or_else(behavior::token_missing);
            return b.action(endpoint);
        };
        let Some(account) = account else {
            return Action::Reply(behavior::bad_account_id());
        };
        let key = (api_key.to_string(), token.to_string(), account);
        let b = self
            .behaviors
            .get(&key)
            .cloned()
            .or_else(|| opts.default_behavior.clone())
            .unwrap_or(Behavior::UnknownToken);
        b.action(endpoint)
    }
}

/// Locks the state; a panic in another holder leaves the data usable, so poisoning is ignored.
pub(crate) fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}
