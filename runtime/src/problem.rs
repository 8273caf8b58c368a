//! RFC 9457 problem details (`application/problem+json`), and the trait generated
//! per-operation error enums implement to cross the wire in both directions.

use crate::contract::ErrorStatus;
use serde::{Deserialize, Serialize};

/// The media type of problem documents.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// A problem document. Declared errors put their fields in `extensions` and their name in
/// `code`; constraint violations go in `violations`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    /// A URI naming the problem type (`urn:pactum:orders:v1:OrderNotFound`, or `about:blank`).
    #[serde(rename = "type", default = "about_blank")]
    pub type_uri: String,
    /// Short summary.
    #[serde(default)]
    pub title: String,
    /// HTTP status.
    #[serde(default)]
    pub status: u16,
    /// Human explanation of this occurrence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The declared error's name, for typed decoding by clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Request id of the failed request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// Extension members: a declared error's fields, `violations`, …
    #[serde(flatten)]
    pub extensions: serde_json::Map<String, serde_json::Value>,
}

fn about_blank() -> String {
    "about:blank".into()
}

impl Problem {
    /// A problem with a status, title and detail.
    pub fn new(status: u16, title: impl Into<String>, detail: impl Into<String>) -> Self {
        Problem {
            type_uri: about_blank(),
            title: title.into(),
            status,
            detail: Some(detail.into()),
            code: None,
            instance: None,
            extensions: serde_json::Map::new(),
        }
    }

    /// The problem's JSON text.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_else(|_| b"{}".to_vec())
    }
}

/// A generated per-operation error enum: how it becomes a problem and comes back.
pub trait OperationError: Sized + Send + 'static {
    /// Class (HTTP status, gRPC code).
    fn status(&self) -> ErrorStatus;
    /// The declared error's name.
    fn code(&self) -> &'static str;
    /// The error's fields, as a JSON object.
    fn fields(&self) -> serde_json::Map<String, serde_json::Value>;
    /// Rebuilds the error from a problem's `code` and extension members; `None` when the code
    /// is not one this operation declares or the fields do not fit.
    fn from_problem(code: &str, fields: serde_json::Value) -> Option<Self>;
}

/// Builds the problem for a declared error of operation `op` in `service` v`major`.
pub fn declared_problem<E: OperationError + std::fmt::Display>(
    service: &str,
    major: u32,
    e: &E,
) -> Problem {
    Problem {
        type_uri: format!("urn:pactum:{service}:v{major}:{}", e.code()),
        title: e.to_string(),
        status: e.status().http_status(),
        detail: None,
        code: Some(e.code().to_string()),
        instance: None,
        extensions: e.fields(),
    }
}

/// The impls of a generated per-operation error enum (`<Op>Error`), written once here
/// instead of in every generated file: inherent `status()` and `code()`, `Display`,
/// `std::error::Error`, [`OperationError`], [`ErrorKind`](crate::ErrorKind), and `From`
/// each declared error (into the enum and into `HandlerError<enum>`, so a handler can
/// `?`/`.into()` it). Each variant holds the error type of the same name; the literal is the
/// error's name on the wire.
///
/// Generated code calls it right after the enum: `::pactum::__operation_error!(GetPriceError
/// { UnknownSku = "UnknownSku" });`. Not for hand-written code: its input is the generator's.
#[doc(hidden)]
#[macro_export]
macro_rules! __operation_error {
    ($name:ident {}) => {
        impl $name {
            /// The error's class: HTTP status and gRPC code.
            pub fn status(&self) -> $crate::ErrorStatus {
                match *self {}
            }
            /// The declared error's name.
            pub fn code(&self) -> &'static str {
                match *self {}
            }
        }
        impl ::std::fmt::Display for $name {
            fn fmt(&self, _: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                match *self {}
            }
        }
        impl $crate::OperationError for $name {
            fn status(&self) -> $crate::ErrorStatus {
                match *self {}
            }
            fn code(&self) -> &'static str {
                match *self {}
            }
            fn fields(&self) -> $crate::__private::serde_json::Map<::std::string::String, $crate::__private::serde_json::Value> {
                match *self {}
            }
            fn from_problem(_: &str, _: $crate::__private::serde_json::Value) -> ::core::option::Option<Self> {
                ::core::option::Option::None
            }
        }
        $crate::__operation_error!(@common $name);
    };
    ($name:ident { $($variant:ident = $code:literal),+ $(,)? }) => {
        $crate::__operation_error!(@declared $name { $($variant = $code),+ });
        impl $crate::OperationError for $name {
            fn status(&self) -> $crate::ErrorStatus {
                $name::status(self)
            }
            fn code(&self) -> &'static str {
                $name::code(self)
            }
            fn fields(&self) -> $crate::__private::serde_json::Map<::std::string::String, $crate::__private::serde_json::Value> {
                let value = match *self {
                    $($name::$variant(ref e) => $crate::__private::serde_json::to_value(e),)+
                };
                match value {
                    ::core::result::Result::Ok($crate::__private::serde_json::Value::Object(m)) => m,
                    _ => $crate::__private::serde_json::Map::new(),
                }
            }
            fn from_problem(code: &str, fields: $crate::__private::serde_json::Value) -> ::core::option::Option<Self> {
                match code {
                    $($code => $crate::__private::serde_json::from_value(fields).ok().map($name::$variant),)+
                    _ => ::core::option::Option::None,
                }
            }
        }
    };
    // A build without REST (gRPC only): the errors are not serde types, and there is no
    // problem document to fill or read.
    (no_json $name:ident {}) => {
        $crate::__operation_error!($name {});
    };
    (no_json $name:ident { $($variant:ident = $code:literal),+ $(,)? }) => {
        $crate::__operation_error!(@declared $name { $($variant = $code),+ });
        impl $crate::OperationError for $name {
            fn status(&self) -> $crate::ErrorStatus {
                $name::status(self)
            }
            fn code(&self) -> &'static str {
                $name::code(self)
            }
            fn fields(&self) -> $crate::__private::serde_json::Map<::std::string::String, $crate::__private::serde_json::Value> {
                $crate::__private::serde_json::Map::new()
            }
            fn from_problem(_: &str, _: $crate::__private::serde_json::Value) -> ::core::option::Option<Self> {
                ::core::option::Option::None
            }
        }
    };
    (@declared $name:ident { $($variant:ident = $code:literal),+ }) => {
        impl $name {
            /// The error's class: HTTP status and gRPC code.
            pub fn status(&self) -> $crate::ErrorStatus {
                match *self {
                    $($name::$variant(_) => <$variant as $crate::DeclaredError>::STATUS,)+
                }
            }
            /// The declared error's name.
            pub fn code(&self) -> &'static str {
                match *self {
                    $($name::$variant(_) => $code,)+
                }
            }
        }
        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                match *self {
                    $($name::$variant(ref e) => ::std::fmt::Display::fmt(e, f),)+
                }
            }
        }
        $(
            impl ::std::convert::From<$variant> for $name {
                fn from(e: $variant) -> Self {
                    $name::$variant(e)
                }
            }
            impl ::std::convert::From<$variant> for $crate::HandlerError<$name> {
                fn from(e: $variant) -> Self {
                    $crate::HandlerError::Declared($name::$variant(e))
                }
            }
        )+
        $crate::__operation_error!(@common $name);
    };
    (@common $name:ident) => {
        impl ::std::error::Error for $name {}
        impl $crate::ErrorKind for $name {
            fn error_kind(&self) -> &str {
                $crate::OperationError::code(self)
            }
        }
        impl ::std::convert::From<$name> for $crate::HandlerError<$name> {
            fn from(e: $name) -> Self {
                $crate::HandlerError::Declared(e)
            }
        }
    };
}
