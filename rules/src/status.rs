//! The classes of a declared error, and what each means on every transport: one table, read
//! by the generator (OpenAPI responses, `.proto` docs, validation of `status:`) and by the
//! runtime (the HTTP status and gRPC code a server answers with).

/// The class of a declared error: one HTTP status and one gRPC code each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorStatus {
    /// The input is wrong in a way the schema could not say (400, `INVALID_ARGUMENT`).
    InvalidArgument,
    /// The caller is not authenticated (401, `UNAUTHENTICATED`).
    Unauthenticated,
    /// The caller may not do this (403, `PERMISSION_DENIED`).
    PermissionDenied,
    /// What the request names does not exist (404, `NOT_FOUND`).
    NotFound,
    /// What the request would create exists already (409, `ALREADY_EXISTS`).
    AlreadyExists,
    /// The request conflicts with the current state (409, `ABORTED`).
    Conflict,
    /// The state does not allow this now (422, `FAILED_PRECONDITION`).
    FailedPrecondition,
    /// A quota or limit is used up (429, `RESOURCE_EXHAUSTED`).
    ResourceExhausted,
    /// Try again later (503, `UNAVAILABLE`).
    Unavailable,
    /// The server failed (500, `INTERNAL`).
    Internal,
}

impl ErrorStatus {
    /// Every class with its contract spelling (`status: not_found`).
    pub const ALL: &'static [(&'static str, ErrorStatus)] = &[
        ("invalid_argument", ErrorStatus::InvalidArgument),
        ("unauthenticated", ErrorStatus::Unauthenticated),
        ("permission_denied", ErrorStatus::PermissionDenied),
        ("not_found", ErrorStatus::NotFound),
        ("already_exists", ErrorStatus::AlreadyExists),
        ("conflict", ErrorStatus::Conflict),
        ("failed_precondition", ErrorStatus::FailedPrecondition),
        ("resource_exhausted", ErrorStatus::ResourceExhausted),
        ("unavailable", ErrorStatus::Unavailable),
        ("internal", ErrorStatus::Internal),
    ];

    /// The class a contract spelling names.
    pub fn from_name(s: &str) -> Option<ErrorStatus> {
        Self::ALL.iter().find(|(n, _)| *n == s).map(|(_, v)| *v)
    }

    /// The HTTP status a server answers with.
    pub const fn http_status(self) -> u16 {
        match self {
            ErrorStatus::InvalidArgument => 400,
            ErrorStatus::Unauthenticated => 401,
            ErrorStatus::PermissionDenied => 403,
            ErrorStatus::NotFound => 404,
            ErrorStatus::AlreadyExists | ErrorStatus::Conflict => 409,
            ErrorStatus::FailedPrecondition => 422,
            ErrorStatus::ResourceExhausted => 429,
            ErrorStatus::Unavailable => 503,
            ErrorStatus::Internal => 500,
        }
    }

    /// The gRPC status code (`google.rpc.Code`) a server answers with.
    pub const fn grpc_code(self) -> i32 {
        match self {
            ErrorStatus::InvalidArgument => 3,
            ErrorStatus::NotFound => 5,
            ErrorStatus::AlreadyExists => 6,
            ErrorStatus::PermissionDenied => 7,
            ErrorStatus::ResourceExhausted => 8,
            ErrorStatus::FailedPrecondition => 9,
            ErrorStatus::Conflict => 10,
            ErrorStatus::Internal => 13,
            ErrorStatus::Unavailable => 14,
            ErrorStatus::Unauthenticated => 16,
        }
    }

    /// The gRPC code's name, as `.proto` docs and OpenAPI extensions write it.
    pub const fn grpc_code_name(self) -> &'static str {
        match self {
            ErrorStatus::InvalidArgument => "INVALID_ARGUMENT",
            ErrorStatus::Unauthenticated => "UNAUTHENTICATED",
            ErrorStatus::PermissionDenied => "PERMISSION_DENIED",
            ErrorStatus::NotFound => "NOT_FOUND",
            ErrorStatus::AlreadyExists => "ALREADY_EXISTS",
            ErrorStatus::Conflict => "ABORTED",
            ErrorStatus::FailedPrecondition => "FAILED_PRECONDITION",
            ErrorStatus::ResourceExhausted => "RESOURCE_EXHAUSTED",
            ErrorStatus::Unavailable => "UNAVAILABLE",
            ErrorStatus::Internal => "INTERNAL",
        }
    }

    /// The variant's name, for generated code naming it (`ErrorStatus::NotFound`).
    pub const fn variant(self) -> &'static str {
        match self {
            ErrorStatus::InvalidArgument => "InvalidArgument",
            ErrorStatus::Unauthenticated => "Unauthenticated",
            ErrorStatus::PermissionDenied => "PermissionDenied",
            ErrorStatus::NotFound => "NotFound",
            ErrorStatus::AlreadyExists => "AlreadyExists",
            ErrorStatus::Conflict => "Conflict",
            ErrorStatus::FailedPrecondition => "FailedPrecondition",
            ErrorStatus::ResourceExhausted => "ResourceExhausted",
            ErrorStatus::Unavailable => "Unavailable",
            ErrorStatus::Internal => "Internal",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorStatus;

    #[test]
    fn every_class_is_spelled_once_and_maps_consistently() {
        for (name, status) in ErrorStatus::ALL {
            assert_eq!(ErrorStatus::from_name(name), Some(*status));
            assert!((400..600).contains(&status.http_status()));
            assert!((1..=16).contains(&status.grpc_code()));
        }
        assert_eq!(ErrorStatus::ALL.len(), 10);
        assert_eq!(ErrorStatus::Conflict.grpc_code_name(), "ABORTED");
    }
}
