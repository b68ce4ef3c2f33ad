//! The dispatcher's web console, rendered on the server. Every asset is compiled into the
//! binary (no CDN: it works on an air-gapped site network); one small script adds live
//! refresh and search-as-you-type, and every page works without it.
//!
//! Security: a session is the same hashed, expiring session token the JSON API uses, held
//! in an `HttpOnly; Secure; SameSite=Strict` cookie. Every POST carries a CSRF token
//! derived from the session token (so it is per session and cannot be computed without
//! the cookie) and is refused without it. Only dispatchers and admins may sign in.

// The error side of these results is the page to answer with; boxing it would only add an
// allocation on the one path that uses it.
#![allow(clippy::result_large_err)]

mod complaints;
mod customers;
mod html;
pub mod i18n;
mod kb;
mod markdown;
mod pages;
mod photos;
mod profiles;
mod report;
mod stock;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::header::{ACCEPT_LANGUAGE, CACHE_CONTROL, CONTENT_TYPE, COOKIE, LOCATION};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use sha2::{Digest, Sha256};

use crate::api::{now_ms, AppState};
use crate::auth::token_hash;
use crate::store::{Actor, TokenStatus};
use i18n::Lang;

pub const SESSION_COOKIE: &str = "fs_console";
pub const LANG_COOKIE: &str = "fs_lang";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/console", get(pages::board))
        .route("/console/", get(pages::board))
        .route("/console/login", get(pages::login_form).post(pages::login))
        .route("/console/logout", post(pages::logout))
        .route("/console/lang/{code}", get(set_lang))
        .route(
            "/console/orders/new",
            get(pages::intake_form).post(pages::intake),
        )
        .route("/console/orders/{id}", get(pages::detail))
        .route("/console/orders/{id}/edit", post(pages::edit))
        .route("/console/orders/{id}/report", get(report::page))
        .route("/console/orders/{id}/complaints", post(complaints::add))
        .route(
            "/console/complaints/{id}/follow-up",
            post(complaints::follow_up),
        )
        .route(
            "/console/orders/{id}/assign",
            get(pages::assign_form).post(pages::assign),
        )
        .route("/console/conflicts", get(pages::conflicts))
        .route("/console/conflicts/{id}/resolve", post(pages::resolve))
        .route("/console/engineers", get(pages::engineers))
        .route("/console/engineers/{name}/profile", post(profiles::save))
        .route("/console/devices/{id}/revoke", post(pages::revoke))
        .route("/console/photos/{id}", get(photos::full))
        .route("/console/photos/{id}/thumb", get(photos::thumb))
        .route("/console/stock", get(stock::page))
        .route("/console/stock/receipt", post(stock::receipt))
        .route("/console/stock/min", post(stock::set_min))
        .route("/console/requisitions/{id}/approve", post(stock::approve))
        .route("/console/requisitions/{id}/reject", post(stock::reject))
        .route("/console/customers", get(customers::list))
        .route("/console/customers/{id}", get(customers::page))
        .route("/console/customers/{id}/log", post(customers::add_log))
        .route(
            "/console/customers/{id}/contacts",
            post(customers::save_contacts),
        )
        .route("/console/kb", get(kb::list))
        .route("/console/kb/new", get(kb::new_form).post(kb::create))
        .route("/console/kb/{id}", get(kb::edit_form).post(kb::save))
        .route("/console/search", get(pages::search))
        .route("/console/events", get(pages::events))
        .route("/console/static/app.js", get(app_js))
        .route("/console/static/app.css", get(app_css))
}

/// The CSRF token of a session: a hash of its secret token under a fixed label. Whoever
/// can read it already holds the session, and another site cannot read either.
pub fn csrf_token(session_token: &str) -> String {
    hex::encode(Sha256::digest(format!("fieldsync-csrf\0{session_token}")))
}

/// The login form's double-submit cookie: there is no session yet to derive a token from,
/// so the form carries a random token that must equal this cookie's. Another site can make
/// a browser post the form but can neither read nor set the cookie; `__Host-` makes the
/// browser take it only `Secure`, from this very host, for `Path=/`, so a sibling subdomain
/// cannot plant a value of its choosing either.
pub const LOGIN_CSRF_COOKIE: &str = "__Host-fs_login";
/// How long a rendered login form stays usable; a stale one is answered with a fresh form.
pub const LOGIN_CSRF_TTL_S: u64 = 3_600;

/// Compare secrets without an early exit, so the time taken says nothing about how much of
/// a guess was right. Lengths are public (every token has the same length).
pub fn same_secret(a: &str, b: &str) -> bool {
    let diff = a
        .bytes()
        .zip(b.bytes())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y));
    a.len() == b.len() && std::hint::black_box(diff) == 0
}

fn is_login_token(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

/// The token for a login form about to be rendered: the browser's current one if it holds
/// a well-formed one (so two open login tabs both work), else a fresh one.
pub fn login_token(headers: &HeaderMap) -> String {
    match cookie(headers, LOGIN_CSRF_COOKIE) {
        Some(t) if is_login_token(t) => t.to_owned(),
        _ => {
            let mut b = [0u8; 32];
            rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut b);
            hex::encode(b)
        }
    }
}

/// `Set-Cookie` for the login form's token (`None`: remove it, once signed in).
pub fn login_cookie(token: Option<&str>) -> HeaderValue {
    let v = match token {
        Some(t) => format!(
            "{LOGIN_CSRF_COOKIE}={t}; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age={LOGIN_CSRF_TTL_S}"
        ),
        None => format!(
            "{LOGIN_CSRF_COOKIE}=; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=0"
        ),
    };
    HeaderValue::from_str(&v).expect("cookie is ASCII")
}

/// Whether a login POST carries the same token in its form as in its cookie.
pub fn login_token_ok(headers: &HeaderMap, form: &html::Form) -> bool {
    let sent = form.get("login_csrf");
    cookie(headers, LOGIN_CSRF_COOKIE).is_some_and(|c| is_login_token(c) && same_secret(c, sent))
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(name)?.strip_prefix('='))
}

/// The console's language: the user's pick (cookie), else the browser's preference.
pub fn lang_of(headers: &HeaderMap) -> Lang {
    cookie(headers, LANG_COOKIE)
        .and_then(Lang::parse)
        .unwrap_or_else(|| {
            Lang::negotiate(
                headers
                    .get(ACCEPT_LANGUAGE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or(""),
            )
        })
}

/// A signed-in office user.
pub struct Session {
    pub actor: Actor,
    pub token_hash: String,
    pub csrf: String,
    pub lang: Lang,
}

pub fn redirect(to: &str) -> Response {
    (
        StatusCode::SEE_OTHER,
        [(
            LOCATION,
            HeaderValue::from_str(to).unwrap_or(HeaderValue::from_static("/console")),
        )],
    )
        .into_response()
}

impl FromRequestParts<AppState> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Response> {
        let lang = lang_of(&parts.headers);
        let Some(token) = cookie(&parts.headers, SESSION_COOKIE).map(str::to_owned) else {
            return Err(redirect("/console/login"));
        };
        let hash = token_hash(&token);
        let store = app.store.clone();
        let h2 = hash.clone();
        let status = tokio::task::spawn_blocking(move || store.token(&h2, now_ms()))
            .await
            .ok()
            .and_then(Result::ok);
        match status {
            // A device token in the cookie is not a console session.
            Some(TokenStatus::Valid(actor)) if actor.device.is_none() && actor.is_office() => {
                Ok(Session {
                    actor,
                    token_hash: hash,
                    csrf: csrf_token(&token),
                    lang,
                })
            }
            Some(TokenStatus::Valid(_)) => Err(pages::message_page(
                lang,
                StatusCode::FORBIDDEN,
                "login.office_only",
            )),
            _ => Err(redirect("/console/login?expired=1")),
        }
    }
}

impl Session {
    /// Refuse a POST whose form lacks this session's CSRF token.
    pub fn check_csrf(&self, form: &html::Form) -> Result<(), Response> {
        let sent = form.get("csrf");
        if !sent.is_empty() && same_secret(sent, &self.csrf) {
            return Ok(());
        }
        Err(pages::message_page(
            self.lang,
            StatusCode::FORBIDDEN,
            "err.csrf",
        ))
    }
}

/// A console form post whose CSRF token checked out, with the session that sent it. Every
/// state-changing console handler takes its form this way, so none can skip the check.
pub struct Posted {
    pub sess: Session,
    pub form: html::Form,
}

impl FromRequest<AppState> for Posted {
    type Rejection = Response;

    async fn from_request(req: Request, app: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let sess = Session::from_request_parts(&mut parts, app).await?;
        let body = Bytes::from_request(Request::from_parts(parts, body), app)
            .await
            .map_err(IntoResponse::into_response)?;
        let form = html::Form::parse(&body);
        sess.check_csrf(&form)?;
        Ok(Posted { sess, form })
    }
}

/// Headers every console page carries: no framing (clickjacking), scripts only from us,
/// never cached (pages hold customer data).
pub fn secure_headers(resp: &mut Response) {
    let h = resp.headers_mut();
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'",
        ),
    );
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

async fn set_lang(
    State(_): State<AppState>,
    axum::extract::Path(code): axum::extract::Path<String>,
    headers: HeaderMap,
) -> Response {
    let lang = Lang::parse(&code).unwrap_or(Lang::En);
    // Back to the page the switch was clicked on, if it was one of ours.
    let back = headers
        .get(axum::http::header::REFERER)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| r.find("/console").map(|i| r[i..].to_owned()))
        .unwrap_or_else(|| "/console".to_owned());
    let mut resp = redirect(&back);
    resp.headers_mut().insert(
        axum::http::header::SET_COOKIE,
        HeaderValue::from_str(&format!(
            "{LANG_COOKIE}={}; Path=/console; Max-Age=31536000; SameSite=Strict; Secure",
            lang.code()
        ))
        .expect("cookie is ASCII"),
    );
    resp
}

const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

async fn app_js() -> Response {
    ([(CONTENT_TYPE, "text/javascript; charset=utf-8")], APP_JS).into_response()
}

async fn app_css() -> Response {
    ([(CONTENT_TYPE, "text/css; charset=utf-8")], APP_CSS).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_cookie(c: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(COOKIE, HeaderValue::from_str(c).unwrap());
        h
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "ab"));
        assert!(!same_secret("", "a"));
    }

    #[test]
    fn a_login_post_needs_the_same_token_in_cookie_and_form() {
        let t = "ab".repeat(32);
        let h = with_cookie(&format!("fs_lang=en; {LOGIN_CSRF_COOKIE}={t}"));
        assert_eq!(login_token(&h), t, "an open form's token is kept");
        let form = |v: &str| html::Form::parse(format!("user=dana&login_csrf={v}").as_bytes());
        assert!(login_token_ok(&h, &form(&t)));
        assert!(!login_token_ok(&h, &form(&"cd".repeat(32))));
        assert!(!login_token_ok(&h, &form("")));
        assert!(!login_token_ok(&HeaderMap::new(), &form(&t)));
        // Not a token the server could have issued: a fresh one instead.
        let odd = with_cookie(&format!("{LOGIN_CSRF_COOKIE}=x"));
        assert!(!login_token_ok(&odd, &form("x")));
        let fresh = login_token(&odd);
        assert!(is_login_token(&fresh) && fresh != login_token(&odd));
    }
}
