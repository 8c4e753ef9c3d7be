//! The OpenAPI document, generated from the handlers' `#[utoipa::path]` annotations (the router
//! is built from the same annotations, so a route cannot be served undocumented), served at
//! `/openapi.json` with a Swagger UI at `/docs` whose files are compiled in (it works offline).

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::OpenApi as Document;
use utoipa::{Modify, OpenApi};

/// The document's fixed part: title, description, tags, the bearer scheme.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "seckill-rs",
        description = "The flash-sale API: every answer is the envelope \
            `{code, message, data, trace_id}`; `code` 0 is success, any other is an error code \
            listed in docs/api.md. Ids are strings of digits; money is an integer of minor \
            units; times are RFC 3339 UTC."
    ),
    modifiers(&Bearer),
    tags(
        (name = "users", description = "Accounts, sessions, verification codes"),
        (name = "catalog", description = "Products and sale activities as buyers see them"),
        (name = "seckill", description = "The buy: the hot path"),
        (name = "orders", description = "The caller's orders"),
        (name = "payments", description = "Payments, provider callbacks, refunds"),
        (name = "admin", description = "Operators: catalog, stock, warm-up, reconciliation, orders"),
        (name = "ops", description = "Health, readiness, metrics"),
    )
)]
pub struct ApiDoc;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A token from POST /api/v1/user/login (HS256, with exp, iss, aud)",
                    ))
                    .build(),
            ),
        );
    }
}
