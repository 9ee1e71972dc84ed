//! The library's doc comments as the OpenAPI document's descriptions.
//!
//! The response schemas are derived on liteshop's own types (its `openapi`
//! feature), so their descriptions are the types' doc comments, written
//! for rustdoc. A client of the HTTP API reads JSON, not Rust: each
//! description keeps its prose and loses what only rustdoc understands —
//! the sections after the first heading (`# Example`, `# Failure`: Rust
//! code and Rust errors), intra-doc links (``[`Page::next`]`` becomes
//! `` `Page::next` ``), and `None`, which is `null` on the wire.

use serde_json::Value;

/// Every `description` in `doc`, translated by [`from_rustdoc`].
pub(crate) fn translate(doc: &mut Value) {
    match doc {
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                match value {
                    Value::String(text) if key == "description" => *text = from_rustdoc(text),
                    other => translate(other),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(translate),
        _ => {}
    }
}

/// One doc comment as an API description: its text up to the first
/// heading, links reduced to their text, `None` as `null`.
pub(crate) fn from_rustdoc(doc: &str) -> String {
    let mut prose = String::new();
    for line in doc.lines() {
        if line.starts_with("# ") {
            break;
        }
        prose.push_str(line);
        prose.push('\n');
    }
    unlink(prose.trim_end()).replace("`None`", "`null`")
}

/// `[text](target)` and `[text]` as `text`, where `text` is a link's
/// label; a web link (`http…`) is kept whole.
fn unlink(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find(']') else {
            out.push_str(&rest[open..]);
            return out;
        };
        let label = &after[..close];
        let tail = &after[close + 1..];
        if let Some(target) = tail.strip_prefix('(')
            && let Some(end) = target.find(')')
        {
            if target.starts_with("http") {
                out.push_str(&rest[open..open + 1 + close + 1 + 1 + end + 1]);
            } else {
                out.push_str(label);
            }
            rest = &target[end + 1..];
        } else {
            out.push_str(label);
            rest = tail;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rustdoc_becomes_prose() {
        assert_eq!(
            from_rustdoc(
                "Where a listing continues from: [`Page::next`].\n\n# Example\n\n```\nlet x = 1;\n```"
            ),
            "Where a listing continues from: `Page::next`."
        );
        assert_eq!(
            from_rustdoc(
                "A [`TopUp`](LedgerKind::TopUp) or `None`; see [Toss](https://docs.tosspayments.com)."
            ),
            "A `TopUp` or `null`; see [Toss](https://docs.tosspayments.com)."
        );
        assert_eq!(from_rustdoc("a [half"), "a [half");
        let mut doc = serde_json::json!({
            "description": "[`X`] here",
            "properties": { "a": { "description": "`None` if unset" } },
            "items": [{ "description": "ok\n# Failure\nnever" }],
        });
        translate(&mut doc);
        assert_eq!(
            doc,
            serde_json::json!({
                "description": "`X` here",
                "properties": { "a": { "description": "`null` if unset" } },
                "items": [{ "description": "ok" }],
            })
        );
    }
}
