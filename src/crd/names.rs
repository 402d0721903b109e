//! The resource's fixed names: annotations, labels, schema patterns and rules,
//! and the types and reasons of its conditions.

/// API group of the custom resource.
pub const GROUP: &str = "trackvia.io";
/// Annotation whose new value forces a verification.
pub const VERIFY_REQUESTED_ANNOTATION: &str = "trackvia.io/verify-requested-at";
/// Label put on every Secret the operator writes.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY_LABEL`].
pub const MANAGER_NAME: &str = "trackvia-operator";
/// Annotation on an output Secret naming the connection that owns it.
pub const CONNECTION_ANNOTATION: &str = "trackvia.io/connection";
/// Annotation on an output Secret holding the hash of its content.
pub const HASH_ANNOTATION: &str = "trackvia.io/content-hash";
/// Annotation on an adopted output Secret (one the operator did not create);
/// its value is the connection's `deletionPolicy`.
pub const ADOPTED_ANNOTATION: &str = "trackvia.io/adopted";
/// CEL rule on the whole object: the output Secret is never the source Secret.
pub const TARGET_NOT_SOURCE_RULE: &str = "self.spec.credentialsSecretRef.name != (has(self.spec.target) && has(self.spec.target.name) ? self.spec.target.name : self.metadata.name)";
/// Message of [`TARGET_NOT_SOURCE_RULE`].
pub const TARGET_NOT_SOURCE_MESSAGE: &str = "the output Secret (spec.target.name, default metadata.name) must not be the credentials Secret (spec.credentialsSecretRef.name)";

/// Regular expression for `spec.host`: a lower-case DNS name with an optional port.
pub const HOST_PATTERN: &str =
    r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*(:[0-9]{1,5})?$";
/// Regular expression for `spec.tokenExpiresOn`: a calendar date.
pub const DATE_PATTERN: &str = r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$";
/// Regular expression for durations (`1h`, `90m`, `1h30m`, `0`).
pub const DURATION_PATTERN: &str = r"^(0|([0-9]+(\.[0-9]+)?(ms|s|m|h))+)$";
/// Regular expression for a Secret data key.
pub const SECRET_KEY_PATTERN: &str = r"^[-._a-zA-Z0-9]+$";
/// Regular expression for free text shown to people (`tokenName`, `apiUser`):
/// no control characters, which could act on a terminal.
pub const PRINTABLE_PATTERN: &str = r"^[^\x00-\x1F\x7F-\x9F]*$";
/// Regular expression for an object name (DNS subdomain).
pub const NAME_PATTERN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

/// Condition types.
pub mod condition {
    /// Summary: can applications use the published credentials?
    pub const READY: &str = "Ready";
    /// The last answer from TrackVia.
    pub const VERIFIED: &str = "Verified";
    /// Whether the output Secret was written.
    pub const SECRET_SYNCED: &str = "SecretSynced";
    /// True inside the expiry-warning window.
    pub const EXPIRING: &str = "Expiring";
}

/// Condition reasons.
pub mod reason {
    /// TrackVia accepted the credentials.
    pub const VERIFIED: &str = "Verified";
    /// The token's expiry instant has passed, or TrackVia said it expired.
    pub const EXPIRED: &str = "Expired";
    /// TrackVia answered 401.
    pub const UNAUTHORIZED: &str = "Unauthorized";
    /// TrackVia answered 403.
    pub const FORBIDDEN: &str = "Forbidden";
    /// The source Secret or one of its keys is missing.
    pub const CREDENTIALS_NOT_FOUND: &str = "CredentialsNotFound";
    /// The spec is invalid in a way the schema cannot catch.
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// The host is outside the operator's allow list.
    pub const HOST_NOT_ALLOWED: &str = "HostNotAllowed";
    /// A Secret the operator does not own sits at the target name.
    pub const TARGET_CONFLICT: &str = "TargetConflict";
    /// TrackVia could not be reached for longer than the grace period.
    pub const UNREACHABLE: &str = "Unreachable";
    /// No answer from TrackVia yet.
    pub const VERIFICATION_PENDING: &str = "VerificationPending";
    /// The last attempt failed transiently (5xx, timeout, connection, 429).
    pub const TRANSIENT_FAILURE: &str = "TransientFailure";
    /// TrackVia rate-limited the request.
    pub const RATE_LIMITED: &str = "RateLimited";
    /// The output Secret is written.
    pub const SYNCED: &str = "Synced";
    /// The output Secret is not written because the credentials are not verified.
    pub const NOT_PUBLISHED: &str = "NotPublished";
    /// Writing the output Secret failed.
    pub const ERROR: &str = "Error";
    /// Ready: the credentials work but the output Secret could not be written.
    pub const SECRET_SYNC_FAILED: &str = "SecretSyncFailed";
    /// The source Secret exists but cannot be read (403 from RBAC, or another
    /// error than "not found").
    pub const CREDENTIALS_UNREADABLE: &str = "CredentialsUnreadable";
    /// Ready and Expiring: TrackVia accepted the credentials after
    /// `spec.tokenExpiresOn` had passed, so that date is stale.
    pub const EXPIRY_DATE_STALE: &str = "ExpiryDateStale";
    /// The token expires within the warning window.
    pub const EXPIRING: &str = "ExpiresSoon";
    /// The token is outside the warning window.
    pub const NOT_EXPIRING: &str = "NotExpiring";
    /// No expiry date is known.
    pub const NO_EXPIRY_DATE: &str = "NoExpiryDate";
}
