//! What every HTML page of the server shares — the console's and the
//! storefront's: the document around a page's body, its navigation, and
//! the sign-out form.

use axum::response::{Html, IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

/// One of the server's two sites.
pub(crate) struct Site {
    /// The name in the header and after each page's title.
    pub(crate) brand: &'static str,
    /// The site's stylesheet.
    pub(crate) stylesheet: &'static str,
    /// The pages in the navigation: path and title.
    pub(crate) nav: &'static [(&'static str, &'static str)],
}

impl Site {
    /// A whole page titled `title`: the head, the header (the navigation
    /// with `current` marked, when there is a `current`, then `aside`),
    /// and `body` under the title.
    pub(crate) fn page(
        &self,
        title: &str,
        current: Option<&str>,
        aside: Markup,
        body: Markup,
    ) -> Response {
        let markup = html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    title { (title) " — " (self.brand) }
                    link rel="stylesheet" href=(self.stylesheet);
                }
                body {
                    a class="skip" href="#main" { "Skip to the content" }
                    header {
                        p class="brand" { (self.brand) }
                        @if let Some(current) = current {
                            nav aria-label="Pages" {
                                ul {
                                    @for (path, name) in self.nav {
                                        li {
                                            @if *path == current {
                                                a href=(path) aria-current="page" { (name) }
                                            } @else {
                                                a href=(path) { (name) }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                        (aside)
                    }
                    main id="main" {
                        h1 { (title) }
                        (body)
                    }
                }
            }
        };
        Html(markup.into_string()).into_response()
    }
}

/// The header's sign-out button: a POST to `action` with the session's
/// CSRF token.
pub(crate) fn sign_out(action: &str, csrf: &str) -> Markup {
    html! {
        form method="post" action=(action) class="sign-out" {
            input type="hidden" name="csrf" value=(csrf);
            button type="submit" { "Sign out" }
        }
    }
}

/// A table's header row of column headings, each `scope="col"`.
pub(crate) fn head(columns: &[&str]) -> Markup {
    html! {
        thead { tr { @for column in columns { th scope="col" { (column) } } } }
    }
}

#[cfg(test)]
mod tests {
    /// The header row renders as the tables wrote it by hand before.
    #[test]
    fn a_header_row_is_one_th_per_column() {
        assert_eq!(
            super::head(&["Law", "Result"]).into_string(),
            r#"<thead><tr><th scope="col">Law</th><th scope="col">Result</th></tr></thead>"#
        );
    }
}
