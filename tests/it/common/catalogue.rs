//! Every route that takes API keys, in one list. The credentials matrix, the hostile-input
//! corpus and the cross-project probes iterate it, and `openapi.rs` checks that it is exactly the
//! document's keyed operations: a new endpoint is documented, so it must be added here, and then
//! each suite either fails to compile (an exhaustive `match` on [`Route`]) or reports the route
//! it does not cover.

use actix_web::http::{Method, StatusCode};

/// A route that takes keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Route {
    V0Create,
    V0Get,
    V0GetById,
    V0List,
    V0UpdateMethods,
    V0UpdateMethodsByCotterId,
    V0EnrolledByCotterId,
    V0Enrolled,
    V0EnrolledKey,
    V0EnrolledAny,
    V0ResetPin,
    V0Event,
    V2Create,
    V2Verify,
    V2Get,
    V2Patch,
    V2Accounts,
    AdminList,
    AdminCreate,
    AdminCount,
    AdminGet,
    AdminDelete,
    AdminRestore,
    AdminDisable,
    AdminEnable,
    AdminAudit,
    AdminSignups,
    AdminUserEvents,
    AdminExport,
    AdminImport,
    AdminSecrets,
    AdminCreateSecret,
    AdminRevokeSecret,
}

/// What the suites need to know of a keyed route.
#[derive(Debug)]
pub struct KeyedRoute {
    pub route: Route,
    pub method: Method,
    /// The path template, as the OpenAPI document writes it.
    pub template: &'static str,
    /// Whether it needs `API_SECRET_KEY` even when the project does not require it everywhere.
    pub needs_secret: bool,
    /// What it answers when it succeeds.
    pub success: StatusCode,
    /// Whether a success adds a row (a user or an account).
    pub creates: bool,
    /// Whether it names a user by id (in the path or the body).
    pub takes_user_id: bool,
}

/// Every keyed route, fixed paths before the templates that would also match them (the order the
/// server matches in).
pub const KEYED_ROUTES: [KeyedRoute; 33] = [
    KeyedRoute {
        route: Route::V0Create,
        method: Method::POST,
        template: "/api/v0/user/create",
        needs_secret: false,
        success: StatusCode::OK,
        creates: true,
        takes_user_id: false,
    },
    KeyedRoute {
        route: Route::V0List,
        method: Method::GET,
        template: "/api/v0/user/list",
        needs_secret: true,
        success: StatusCode::OK,
        creates: false,
        takes_user_id: false,
    },
    KeyedRoute {
        route: Route::V0Get,
        method: Method::GET,
        template: "/api/v0/user",
        needs_secret: false,
        success: StatusCode::OK,
        creates: false,
        takes_user_id: false,
    },
    KeyedRoute {
        route: Route::V0EnrolledByCotterId,
        method: Method::GET,
        template: "/api/v0/user/methods",
        needs_secret: false,
        success: StatusCode::OK,
        creates: false,
        takes_user_id: true,
    },
    KeyedRoute {
        route: Route::V0UpdateMethodsByCotterId,
        method: Method::PUT,
        template: "/api/v0/user/methods",
        needs_secret: false,
        success: StatusCode::OK,
        creates: false,
        takes_user_id: true,
    },
    KeyedRoute {
        route: Route::V0EnrolledAny,
        method: Method::GET,
        template: "/api/v0/user/enrolled/any/{client_user_id}/{method}",
        needs_secret: false,
        success: StatusCode::OK,
        creates: false,
        takes_user_id: true,
    },
    KeyedRoute {
        route: Route::V0Enrolled,
        method: Method::GET,
        template: "/api/v0/user/enrolled/{client_user_id}/{method}",
        needs_secret: false,
        success: StatusCode::OK,
        creates: false,
        takes_user_id: true,
    },
    KeyedRoute {
        route: Route::V0EnrolledKey,
        method: Method::GET,
        template: "/api/v0/user/enrolled/{client_user_id}/{method}/{encKey}",
        needs_secret: false,
        success: StatusCode::OK,
        creates: false,
        takes_user_id: true,
    },
    KeyedRoute {
        route: Route::V0ResetPin,
        method: Method::POST,
        template: "/api/v0/user/reset/{step}/{client_user_id}",
        needs_secret: false,
        success: StatusCode::NOT_IMPLEMENTED,
        creates: false,
        takes_user_id: true,
    },
    KeyedRoute {
        route: Route::V0GetById,
        method: Method::GET,
        template: "/api/v0/user/{client_user_id}",
        needs_secret: false,
        success: StatusCode::OK,
        creates: false,
        takes_user_id: true,
    },
    KeyedRoute {
        route: Route::V0UpdateMethods,
        method: Method::PUT,
        template: "/api/v0/user/{client_user_id}",
        needs_secret: false,
        success: StatusCode::OK,
        creates: false,
        takes_user_id: true,
    },
    KeyedRoute {
        route: Route::V0Event,
        method: Method::POST,
        template: "/api/v0/event/create",
        needs_secret: false,
        success: StatusCode::OK,
        creates: false,
        takes_user_id: true,
    },
    KeyedRoute {
        route: Route::V2Create,
        method: Method::POST,
        template: "/v2/users",
        needs_secret: true,
        success: StatusCode::CREATED,
        creates: true,
        takes_user_id: false,
    },
    KeyedRoute {
        route: Route::V2Verify,
        method: Method::POST,
        template: "/v2/users/verify",
        needs_secret: true,
        success: StatusCode::OK,
        creates: false,
        takes_user_id: false,
    },
    KeyedRoute {
        route: Route::V2Get,
        method: Method::GET,
        template: "/v2/users/{user_id}",
        needs_secret: true,
        success: StatusCode::OK,
        creates: false,
        takes_user_id: true,
    },
    KeyedRoute {
        route: Route::V2Patch,
        method: Method::PATCH,
        template: "/v2/users/{user_id}",
        needs_secret: true,
        success: StatusCode::OK,
        creates: false,
        takes_user_id: true,
    },
    KeyedRoute {
        route: Route::V2Accounts,
        method: Method::POST,
        template: "/v2/accounts",
        needs_secret: true,
        success: StatusCode::CREATED,
        creates: true,
        takes_user_id: true,
    },
    KeyedRoute {
        route: Route::AdminList,
        method: Method::GET,
        template: "/admin/v1/users",
        needs_secret: true,
        success: StatusCode::OK,
        creates: false,
        takes_user_id: false,
    },
    KeyedRoute {
        route: Route::AdminCreate,
        method: Method::POST,
        template: "/admin/v1/users",
        needs_secret: true,
        success: StatusCode::CREATED,
        creates: true,
        takes_user_id: false,
    },
    KeyedRoute {
        route: Route::AdminCount,
        method: Method::GET,
        template: "/admin/v1/users/count",
        needs_secret: true,
        success: StatusCode::OK,
        creates: false,
        takes_user_id: false,
    },
    KeyedRoute {
        route: Route::AdminExport,
        method: Method::GET,
        template: "/admin/v1/users/export",
        needs_secret: true,
        success: StatusCode::OK,
        creates: false,
        takes_user_id: false,
    },
    KeyedRoute {
        route: Route::AdminImport,
        method: Method::POST,
        template: "/admin/v1/users/import",
        needs_secret: true,
        success: StatusCode::OK,
        creates: true,
        takes_user_id: false,
    },
    KeyedRoute {
        route: Route::AdminGet,
        method: Method::GET,
        template: "/admin/v1/users/{user_id}",
        needs_secret: true,
        success: StatusCode::OK,
        creates: false,
        takes_user_id: true,
    },
    KeyedRoute {
        route: Route::AdminDelete,
        method: Method::DELETE,
        template: "/admin/v1/users/{user_id}",
        needs_secret: true,
        success: StatusCode::OK,
        creates: false,
        takes_user_id: true,
    },
    KeyedRoute {
        route: Route::AdminRestore,
        method: Method::POST,
        template: "/admin/v1/users/{user_id}/restore",
        needs_secret: true,
        success: StatusCode::OK,
        creates: false,
        takes_user_id: true,
    },
    KeyedRoute {
        route: Route::AdminDisable,
        method: Method::POST,
        template: "/admin/v1/users/{user_id}/disable",
        needs_secret: true,
        success: StatusCode::OK,
        creates: false,
        takes_user_id: true,
    },
    KeyedRoute {
        route: Route::AdminEnable,
        method: Method::POST,
        template: "/admin/v1/users/{user_id}/enable",
        needs_secret: true,
        success: StatusCode::OK,
        creates: false,
        takes_user_id: true,
    },
    KeyedRoute {
        route: Route::AdminUserEvents,
        method: Method::GET,
        template: "/admin/v1/users/{user_id}/events",
        needs_secret: true,
        success: StatusCode::OK,
        creates: false,
        takes_user_id: true,
    },
    KeyedRoute {
        route: Route::AdminAudit,
        method: Method::GET,
        template: "/admin/v1/audit",
        needs_secret: true,
        success: StatusCode::OK,
        creates: false,
        takes_user_id: false,
    },
    KeyedRoute {
        route: Route::AdminSignups,
        method: Method::GET,
        template: "/admin/v1/stats/signups",
        needs_secret: true,
        success: StatusCode::OK,
        creates: false,
        takes_user_id: false,
    },
    KeyedRoute {
        route: Route::AdminSecrets,
        method: Method::GET,
        template: "/admin/v1/secrets",
        needs_secret: true,
        success: StatusCode::OK,
        creates: false,
        takes_user_id: false,
    },
    // Adds a secret, which is no user or account row (`creates` counts those).
    KeyedRoute {
        route: Route::AdminCreateSecret,
        method: Method::POST,
        template: "/admin/v1/secrets",
        needs_secret: true,
        success: StatusCode::CREATED,
        creates: false,
        takes_user_id: false,
    },
    KeyedRoute {
        route: Route::AdminRevokeSecret,
        method: Method::POST,
        template: "/admin/v1/secrets/{secret_id}/revoke",
        needs_secret: true,
        success: StatusCode::OK,
        creates: false,
        takes_user_id: false,
    },
];

impl Route {
    /// The route's entry in [`KEYED_ROUTES`].
    pub fn keyed(self) -> &'static KeyedRoute {
        KEYED_ROUTES
            .iter()
            .find(|keyed| keyed.route == self)
            .expect("every route is in the catalogue")
    }

    /// Whether a success adds a row.
    pub fn creates(self) -> bool {
        self.keyed().creates
    }

    /// `METHOD /template`, for tables and failure messages.
    pub fn name(self) -> String {
        let keyed = self.keyed();
        format!("{} {}", keyed.method, keyed.template)
    }
}

/// The keyed route a request with this method and path goes to, if any: a `{…}` segment of a
/// template matches any one non-empty segment, and the first match wins, as in the server.
pub fn route_of(method: &Method, path: &str) -> Option<Route> {
    let segments: Vec<&str> = path.split('/').collect();
    KEYED_ROUTES
        .iter()
        .find(|keyed| {
            let template: Vec<&str> = keyed.template.split('/').collect();
            keyed.method == method
                && template.len() == segments.len()
                && template.iter().zip(&segments).all(|(t, s)| {
                    t == s || (t.starts_with('{') && t.ends_with('}') && !s.is_empty())
                })
        })
        .map(|keyed| keyed.route)
}

#[test]
fn requests_are_matched_to_their_routes() {
    let id = "67e55044-10b1-426f-9247-bb680e5fe0c8";
    for (method, path, route) in [
        (Method::POST, "/api/v0/user/create", Some(Route::V0Create)),
        (Method::GET, "/api/v0/user/list", Some(Route::V0List)),
        (Method::GET, "/api/v0/user", Some(Route::V0Get)),
        (
            Method::GET,
            &format!("/api/v0/user/{id}"),
            Some(Route::V0GetById),
        ),
        (Method::GET, "/api/v0/user/%FF", Some(Route::V0GetById)),
        (Method::GET, "/api/v0/user/", None),
        (
            Method::PATCH,
            &format!("/v2/users/{id}"),
            Some(Route::V2Patch),
        ),
        (Method::GET, "/v2/users/x/y", None),
        (Method::DELETE, "/v2/users", None),
        (Method::POST, "/v2/accounts", Some(Route::V2Accounts)),
        (
            Method::GET,
            "/admin/v1/users/count",
            Some(Route::AdminCount),
        ),
        (
            Method::DELETE,
            &format!("/admin/v1/users/{id}"),
            Some(Route::AdminDelete),
        ),
        (
            Method::POST,
            &format!("/admin/v1/users/{id}/restore"),
            Some(Route::AdminRestore),
        ),
        (Method::GET, "/admin/v1/secrets", Some(Route::AdminSecrets)),
        (
            Method::POST,
            "/admin/v1/secrets",
            Some(Route::AdminCreateSecret),
        ),
        (
            Method::POST,
            &format!("/admin/v1/secrets/{id}/revoke"),
            Some(Route::AdminRevokeSecret),
        ),
        (Method::GET, &format!("/admin/v1/secrets/{id}/revoke"), None),
        (Method::POST, "/admin/v1/secrets//revoke", None),
    ] {
        assert_eq!(route_of(&method, path), route, "{method} {path}");
    }
}
