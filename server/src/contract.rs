//! What each operation can answer, in one place: the documented responses
//! of every route are generated from its [`Contract`], so the OpenAPI
//! document lists exactly the statuses the handler can send.
//!
//! A handler's status comes from three places, and a contract names each:
//! who may call it ([`Auth`]: 401, 403, and 404 for a valid token whose
//! user does not exist), what it reads (a JSON body: 400, 408, 413; an
//! `Idempotency-Key`: 400, 422; path or query parameters: 400), and which
//! [`ErrorKind`]s the library call can return, each mapped to its status
//! as [`crate::problem::status`] maps it. `tests/contract.rs` drives every
//! error path of every route and fails when a status is sent that the
//! document does not list for that route; the unit test at the end of
//! this file reads the library's source and checks each contract's kinds
//! against the `# Failure` docs of the `Shop` methods its handler calls,
//! both ways, so a variant documented later, or a kind listed by habit,
//! fails the build's tests rather than the document.

use std::collections::BTreeMap;

use liteshop::ErrorKind;
use utoipa::openapi::{RefOr, Response, ResponseBuilder, content::ContentBuilder};

/// Who may call an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Auth {
    /// Anyone.
    Public,
    /// A user's bearer token: 401 without a valid one; 404 when it names
    /// a user this shop does not have.
    User,
    /// The admin token: 401 without a valid token, 403 for a user's.
    Admin,
}

/// What an operation reads and what its library call can refuse.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Contract {
    /// Who may call it.
    pub(crate) auth: Auth,
    /// It reads a JSON body: 400 (malformed, unknown field), 408 (not
    /// sent in time), 413 (over the limit).
    pub(crate) body: bool,
    /// It takes an `Idempotency-Key`: 400 (empty or not a UUID), 422 (the
    /// key was used for another request).
    pub(crate) key: bool,
    /// It reads path or query parameters: 400 when one is out of range.
    pub(crate) params: bool,
    /// The kinds of error its library call can return. Every call reaches
    /// the database, so it can also be [`ErrorKind::Busy`] (503) and
    /// [`ErrorKind::Internal`] (500); those are added here, not listed.
    pub(crate) errors: &'static [ErrorKind],
}

impl Contract {
    /// A contract for an operation callable by `auth`.
    pub(crate) const fn new(auth: Auth) -> Contract {
        Contract {
            auth,
            body: false,
            key: false,
            params: false,
            errors: &[],
        }
    }

    /// It reads a JSON body.
    pub(crate) const fn body(mut self) -> Contract {
        self.body = true;
        self
    }

    /// It takes an `Idempotency-Key`.
    pub(crate) const fn key(mut self) -> Contract {
        self.key = true;
        self
    }

    /// It reads path or query parameters.
    pub(crate) const fn params(mut self) -> Contract {
        self.params = true;
        self
    }

    /// The kinds of error its library call can return.
    pub(crate) const fn errors(mut self, errors: &'static [ErrorKind]) -> Contract {
        self.errors = errors;
        self
    }

    /// Every error status the operation can send, with what it means.
    pub(crate) fn statuses(&self) -> BTreeMap<u16, &'static str> {
        let mut statuses = BTreeMap::new();
        let mut add = |status: u16, why: &'static str| {
            statuses.entry(status).or_insert(why);
        };
        match self.auth {
            Auth::Public => {}
            Auth::User => {
                add(401, "no bearer token, or not a valid one");
                add(404, "not found (also: the token's user does not exist)");
            }
            Auth::Admin => {
                add(401, "no bearer token, or not a valid one");
                add(403, "a user's token on an admin route");
            }
        }
        if self.body {
            add(400, "the body is not valid for this operation");
            add(408, "the body did not arrive in time");
            add(413, "the body is over the size limit");
        }
        if self.key {
            add(400, "the Idempotency-Key is empty or not a UUID");
            add(
                422,
                "the Idempotency-Key was used for another request (idempotency_key_reused)",
            );
        }
        if self.params {
            add(400, "a parameter is out of range");
        }
        for kind in self.errors {
            let (status, why) = kind_status(*kind);
            add(status, why);
        }
        for kind in [ErrorKind::Busy, ErrorKind::Internal] {
            let (status, why) = kind_status(kind);
            add(status, why);
        }
        statuses
    }

    /// The documented error responses, each a problem body.
    pub(crate) fn responses(&self) -> BTreeMap<String, RefOr<Response>> {
        self.statuses()
            .into_iter()
            .map(|(status, why)| {
                let problem = ContentBuilder::new()
                    .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                        "Problem",
                    ))))
                    .build();
                let response = ResponseBuilder::new()
                    .description(why)
                    .content("application/problem+json", problem)
                    .build();
                (status.to_string(), RefOr::T(response))
            })
            .collect()
    }
}

/// The status of an error kind and what it means, as
/// [`ErrorKind::http_status`] gives it.
fn kind_status(kind: ErrorKind) -> (u16, &'static str) {
    let why = match kind {
        ErrorKind::InvalidInput => "the input is not valid",
        ErrorKind::NotFound => "not found (also another user's)",
        ErrorKind::Conflict => "refused in the shop's current state",
        ErrorKind::PaymentDeclined => "the payment gateway declined",
        ErrorKind::PaymentOutcomeUnknown => {
            "no definite answer from the payment gateway yet; reconciliation settles it"
        }
        ErrorKind::Busy => "the database or the payment gateway is busy; retry",
        _ => "internal error",
    };
    (kind.http_status(), why)
}

/// Declares a type whose `IntoResponses` are a contract's error responses,
/// for `#[utoipa::path(responses(...))]`.
macro_rules! contract {
    ($(#[$doc:meta])* $name:ident = $contract:expr) => {
        $(#[$doc])*
        pub(crate) struct $name;
        impl $name {
            #[allow(dead_code)]
            pub(crate) const CONTRACT: $crate::contract::Contract = $contract;
        }
        impl utoipa::IntoResponses for $name {
            fn responses() -> std::collections::BTreeMap<
                String,
                utoipa::openapi::RefOr<utoipa::openapi::response::Response>,
            > {
                $name::CONTRACT.responses()
            }
        }
    };
}
pub(crate) use contract;

#[cfg(test)]
mod tests {
    //! Each contract's error kinds against the library's own `# Failure`
    //! docs, read from its source: the kinds a contract lists are the kinds
    //! of the errors its handler's `Shop` calls document, no more and no
    //! fewer, so neither can change without the other.

    use std::collections::{BTreeSet, HashMap};
    use std::path::Path;

    use liteshop::ErrorKind;

    use super::{Auth, Contract};

    /// Documented variants a route's handler can never meet, so its
    /// contract need not send their status: route, variant, why.
    const COVERED: &[(&str, &str, &str)] = &[(
        "ReadyErrors",
        "InvalidPageSize",
        "the probe asks for a page of one product, always a valid size",
    )];

    /// The text of every `.rs` file in `dir` (relative to this crate), in
    /// name order.
    fn sources(dir: &str) -> Vec<String> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|err| panic!("{}: {err}", dir.display()))
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "rs"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|path| std::fs::read_to_string(path).unwrap())
            .collect()
    }

    /// The identifiers right after each `prefix` in `text`.
    fn names_after<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
        text.match_indices(prefix)
            .map(|(at, _)| ident(&text[at + prefix.len()..]))
            .filter(|name| !name.is_empty())
            .collect()
    }

    /// The identifier `text` starts with (empty if none).
    fn ident(text: &str) -> &str {
        let end = text
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(text.len());
        &text[..end]
    }

    /// The `ErrorKind` spelled `name`.
    fn kind_named(name: &str) -> ErrorKind {
        match name {
            "InvalidInput" => ErrorKind::InvalidInput,
            "NotFound" => ErrorKind::NotFound,
            "Conflict" => ErrorKind::Conflict,
            "PaymentDeclined" => ErrorKind::PaymentDeclined,
            "PaymentOutcomeUnknown" => ErrorKind::PaymentOutcomeUnknown,
            "Busy" => ErrorKind::Busy,
            "Internal" => ErrorKind::Internal,
            other => panic!("no ErrorKind {other}"),
        }
    }

    /// Every `Error` variant's kind, as `Error::kind` matches it.
    fn kinds() -> HashMap<String, ErrorKind> {
        let error =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../src/error.rs"))
                .unwrap();
        let start = error
            .find("pub fn kind(&self) -> ErrorKind {")
            .expect("Error::kind");
        let body = &error[start..];
        let body = &body[..body.find("\n    }\n").expect("the end of Error::kind")];
        let code: String = body
            .lines()
            .map(|line| line.split("//").next().unwrap())
            .collect::<Vec<_>>()
            .join("\n");
        let mut kinds = HashMap::new();
        let mut pending = Vec::new();
        for arm in code.split("=> ErrorKind::") {
            let kind = ident(arm);
            if !kind.is_empty() && !pending.is_empty() {
                let kind = kind_named(kind);
                for variant in pending.drain(..) {
                    kinds.insert(variant, kind);
                }
            }
            let rest = &arm[kind.len()..];
            pending.extend(
                rest.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .filter(|word| word.starts_with(|c: char| c.is_ascii_uppercase()))
                    .filter(|word| !matches!(*word, "Error" | "ErrorKind"))
                    .map(str::to_owned),
            );
        }
        assert!(pending.is_empty(), "unmatched variants {pending:?}");
        kinds
    }

    /// Every public method of `Shop` (and of its keyed handle) → its
    /// `# Failure` section, where it has one.
    fn failure_docs() -> (BTreeSet<String>, HashMap<String, String>) {
        let mut methods = BTreeSet::new();
        let mut failures: HashMap<String, String> = HashMap::new();
        for source in sources("../src/shop") {
            let mut doc = String::new();
            for line in source.lines() {
                let line = line.trim();
                if let Some(text) = line.strip_prefix("///") {
                    doc.push_str(text);
                    doc.push('\n');
                    continue;
                }
                if let Some(at) = line.find("pub fn ") {
                    let name = ident(&line[at + "pub fn ".len()..]).to_owned();
                    if let Some(at) = doc.find("# Failure") {
                        failures
                            .entry(name.clone())
                            .or_default()
                            .push_str(&doc[at..]);
                    }
                    methods.insert(name);
                }
                if !line.starts_with("#[") {
                    doc.clear();
                }
            }
        }
        (methods, failures)
    }

    /// The variants `method`'s `# Failure` names, with those of the
    /// methods it defers to ("as [`Shop::place_order`]").
    fn documented(
        failures: &HashMap<String, String>,
        method: &str,
        into: &mut BTreeSet<String>,
    ) -> bool {
        let Some(text) = failures.get(method) else {
            return false;
        };
        for variant in names_after(text, "Error::") {
            into.insert(variant.to_owned());
        }
        for other in names_after(text, "Shop::") {
            if other != method {
                documented(failures, other, into);
            }
        }
        true
    }

    /// A `contract!` as the route's source states it.
    struct Stated {
        /// The type `contract!` declares (`OrderPaymentsErrors`).
        name: String,
        /// Who may call, and whether a body, a key or parameters are read;
        /// its `errors` left empty.
        contract: Contract,
        /// The kinds its `errors(&[…])` lists, by name.
        listed: Vec<String>,
        /// The `Shop` methods its handler calls.
        calls: BTreeSet<String>,
    }

    /// Every `contract!` in `src/routes`, with the calls of `methods` its
    /// handler (what follows it, up to the next `contract!`) makes.
    fn contracts(methods: &BTreeSet<String>) -> Vec<Stated> {
        let mut stated = Vec::new();
        for source in sources("src/routes") {
            for part in source.split("\ncontract!(").skip(1) {
                let (declaration, handler) = part.split_once("\n);").expect("the end of contract!");
                let name = ident(
                    declaration
                        .lines()
                        .map(str::trim)
                        .find(|line| !line.is_empty() && !line.starts_with("///"))
                        .unwrap(),
                )
                .to_owned();
                let mut contract = Contract::new(match names_after(declaration, "Auth::")[0] {
                    "Public" => Auth::Public,
                    "User" => Auth::User,
                    "Admin" => Auth::Admin,
                    other => panic!("{name}: Auth::{other}"),
                });
                contract.body = declaration.contains(".body()");
                contract.key = declaration.contains(".key()");
                contract.params = declaration.contains(".params()");
                let listed = declaration
                    .split_once(".errors(&[")
                    .map(|(_, rest)| rest.split_once("])").unwrap().0)
                    .unwrap_or("")
                    .split(',')
                    .map(|kind| kind.trim().rsplit("::").next().unwrap().to_owned())
                    .filter(|kind| !kind.is_empty())
                    .collect();
                let compact: String = handler.split_whitespace().collect();
                let calls = names_after(&compact, "shop.")
                    .into_iter()
                    .filter(|call| methods.contains(*call))
                    .map(str::to_owned)
                    .collect();
                stated.push(Stated {
                    name,
                    contract,
                    listed,
                    calls,
                });
            }
        }
        stated
    }

    #[test]
    fn every_contract_lists_the_kinds_its_calls_document() {
        let kinds = kinds();
        let (methods, failures) = failure_docs();
        let stated = contracts(&methods);
        assert!(stated.len() > 30, "only {} contracts found", stated.len());
        let mut wrong = Vec::new();
        for route in &stated {
            let mut variants = BTreeSet::new();
            for call in &route.calls {
                if !documented(&failures, call, &mut variants) {
                    wrong.push(format!("{}: Shop::{call} has no # Failure", route.name));
                }
            }
            let statuses = Contract {
                errors: Box::leak(
                    route
                        .listed
                        .iter()
                        .map(|kind| kind_named(kind))
                        .collect::<Vec<_>>()
                        .into_boxed_slice(),
                ),
                ..route.contract
            }
            .statuses();
            let mut named = BTreeSet::new();
            for variant in &variants {
                let kind = *kinds
                    .get(variant)
                    .unwrap_or_else(|| panic!("{}: no Error::{variant}", route.name));
                named.insert(format!("{kind:?}"));
                // The acting user's id comes from a verified token, which
                // never names an id below 1.
                let from_token = route.contract.auth == Auth::User && variant == "InvalidId";
                let covered = COVERED
                    .iter()
                    .any(|(name, covered, _)| *name == route.name && covered == variant);
                if !statuses.contains_key(&kind.http_status()) && !from_token && !covered {
                    wrong.push(format!(
                        "{}: Error::{variant} ({kind:?}) is documented, its status is not",
                        route.name
                    ));
                }
            }
            for kind in &route.listed {
                if !named.contains(kind) {
                    wrong.push(format!(
                        "{}: lists {kind}, which no error of {:?} is",
                        route.name, route.calls
                    ));
                }
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }
}
