//! What the APIs' parts of the OpenAPI document share: the sets of error responses every keyed
//! route, or every route with a body, can answer ([`error_set!`]).

use std::collections::BTreeMap;

use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};
use utoipa::ToSchema;

/// Responses of `statuses` (status, description), each with the error body `B` as
/// `content_type`: what an `IntoResponses` of error statuses returns.
pub fn error_responses<B: ToSchema>(
    content_type: &str,
    statuses: &[(u16, &str)],
) -> BTreeMap<String, RefOr<Response>> {
    statuses
        .iter()
        .map(|(status, description)| {
            let content = ContentBuilder::new()
                .schema(Some(Ref::from_schema_name(B::name())))
                .build();
            let response = ResponseBuilder::new()
                .description(*description)
                .content(content_type, content)
                .build();
            (status.to_string(), RefOr::T(response))
        })
        .collect()
}

/// Declares a set of error responses as a type that `#[utoipa::path(responses(...))]` can
/// name: `error_set!(/// doc, Name, BodyType, [(401, "description"), ...]);`, the body sent as
/// `application/json` unless a media type follows the body type.
macro_rules! error_set {
    ($(#[$doc:meta])* $name:ident, $body:ty, [$(($status:expr, $description:expr)),* $(,)?]) => {
        error_set!($(#[$doc])* $name, $body, "application/json", [$(($status, $description)),*]);
    };
    ($(#[$doc:meta])* $name:ident, $body:ty, $content_type:expr,
     [$(($status:expr, $description:expr)),* $(,)?]) => {
        $(#[$doc])*
        struct $name;

        impl utoipa::IntoResponses for $name {
            fn responses() -> std::collections::BTreeMap<
                String,
                utoipa::openapi::RefOr<utoipa::openapi::Response>,
            > {
                $crate::api::doc::error_responses::<$body>(
                    $content_type,
                    &[$(($status, $description)),*],
                )
            }
        }
    };
}

pub(crate) use error_set;
