//! The approvals API's routes, in one place for the server ([`ApprovalApi`](crate::ApprovalApi))
//! and the client ([`ApprovalsClient`](crate::ApprovalsClient)): each route's method and path,
//! and the parse of a request line back into a route.

use http::Method;

use crate::ApprovalId;

/// The longest approval id the API looks up (longer ones are unknown).
const MAX_ID: usize = 128;

/// A route the API knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    /// `GET /v1/approvals`.
    List,
    /// `GET /v1/approvals/{id}`.
    Show(ApprovalId),
    /// `POST /v1/approvals/{id}/approve` (`true`) or `…/deny`.
    Decide(ApprovalId, bool),
    /// `POST /v1/approvals/{id}/revoke`.
    Revoke(ApprovalId),
    /// `GET /v1/openapi.json`.
    OpenApi,
}

/// Why a request line names no route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum NoRoute {
    /// No such path.
    NotFound,
    /// The path names an approval id the API would never issue.
    UnknownId(String),
    /// The path exists, with this method only.
    MethodNotAllowed(&'static str),
}

impl Route {
    /// The method the route takes.
    pub(crate) fn method(&self) -> Method {
        match self {
            Route::List | Route::Show(_) | Route::OpenApi => Method::GET,
            Route::Decide(..) | Route::Revoke(_) => Method::POST,
        }
    }

    /// The path, with the id percent-encoded (an id can never change which route it is).
    pub(crate) fn path(&self) -> String {
        let id = |id: &ApprovalId| encode_segment(id.as_str());
        match self {
            Route::List => "/v1/approvals".to_owned(),
            Route::Show(i) => format!("/v1/approvals/{}", id(i)),
            Route::Decide(i, approve) => {
                let verb = if *approve { "approve" } else { "deny" };
                format!("/v1/approvals/{}/{verb}", id(i))
            }
            Route::Revoke(i) => format!("/v1/approvals/{}/revoke", id(i)),
            Route::OpenApi => "/v1/openapi.json".to_owned(),
        }
    }

    /// The route of a request line.
    pub(crate) fn parse(method: &Method, path: &str) -> Result<Route, NoRoute> {
        let Some(rest) = path.strip_prefix("/v1/") else {
            return Err(NoRoute::NotFound);
        };
        let segments: Vec<&str> = rest.split('/').collect();
        let route = match segments.as_slice() {
            ["openapi.json"] => Route::OpenApi,
            ["approvals"] => Route::List,
            ["approvals", id] if valid_id(id) => Route::Show(ApprovalId::new(*id)),
            ["approvals", id, verb @ ("approve" | "deny")] if valid_id(id) => {
                Route::Decide(ApprovalId::new(*id), *verb == "approve")
            }
            ["approvals", id, "revoke"] if valid_id(id) => Route::Revoke(ApprovalId::new(*id)),
            // Ids the API would never issue: unknown, whatever the method.
            ["approvals", id] | ["approvals", id, "approve" | "deny" | "revoke"]
                if !id.is_empty() =>
            {
                return Err(NoRoute::UnknownId((*id).to_owned()));
            }
            _ => return Err(NoRoute::NotFound),
        };
        let allowed = route.method();
        if *method != allowed {
            return Err(NoRoute::MethodNotAllowed(if allowed == Method::GET {
                "GET"
            } else {
                "POST"
            }));
        }
        Ok(route)
    }
}

/// Approval ids as the API accepts them: short, and only characters ids are made of.
fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Percent-encodes what is not unreserved in a path segment.
fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every route the client can build is the route the server reads.
    #[test]
    fn client_paths_parse_back_to_their_routes() {
        let id = ApprovalId::new("apr-0123abcd");
        for route in [
            Route::List,
            Route::Show(id.clone()),
            Route::Decide(id.clone(), true),
            Route::Decide(id.clone(), false),
            Route::Revoke(id),
            Route::OpenApi,
        ] {
            assert_eq!(
                Route::parse(&route.method(), &route.path()),
                Ok(route.clone())
            );
        }
    }

    #[test]
    fn odd_ids_cannot_reach_another_route() {
        for odd in ["a/b", "../x", "apr-1/approve", "a b", "%2e%2e"] {
            let route = Route::Show(ApprovalId::new(odd));
            assert!(
                matches!(
                    Route::parse(&Method::GET, &route.path()),
                    Err(NoRoute::UnknownId(_))
                ),
                "{odd}"
            );
        }
        assert_eq!(encode_segment("apr-1/../x y"), "apr-1%2F..%2Fx%20y");
    }

    #[test]
    fn unknown_paths_and_wrong_methods() {
        let get = Method::GET;
        let post = Method::POST;
        assert_eq!(
            Route::parse(&post, "/v1/approvals"),
            Err(NoRoute::MethodNotAllowed("GET"))
        );
        assert_eq!(
            Route::parse(&get, "/v1/approvals/apr-1/approve"),
            Err(NoRoute::MethodNotAllowed("POST"))
        );
        for missing in [
            "/",
            "/v1",
            "/v1/",
            "/v1/approvals/",
            "/v2/approvals",
            "/v1/approvals/a/b/c",
        ] {
            assert_eq!(
                Route::parse(&get, missing),
                Err(NoRoute::NotFound),
                "{missing}"
            );
        }
        assert!(matches!(
            Route::parse(&get, "/v1/approvals/%2e%2e"),
            Err(NoRoute::UnknownId(_))
        ));
    }
}
