//! [`text_enum!`]: how a fieldless enum is stored as text.

/// Gives a fieldless enum its stored text: `as_str`, `Display` (the same
/// lowercase text), and its stored value ([`ToValue`](crate::db::ToValue),
/// [`FromValue`](crate::db::FromValue)). The table's
/// `CHECK (column IN (...))` lists the same strings.
macro_rules! text_enum {
    ($name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $name {
            /// The text stored in the database.
            pub(crate) const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            /// Every variant, in declaration order.
            #[allow(dead_code, reason = "for the tests of some enums only")]
            pub(crate) const VARIANTS: &'static [$name] = &[$($name::$variant),+];
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl crate::db::ToValue for $name {
            fn to_value(&self) -> crate::db::ValueRef<'_> {
                crate::db::ValueRef::Text(self.as_str())
            }
        }

        impl crate::db::FromValue for $name {
            fn from_value(value: &crate::db::Value) -> std::result::Result<Self, String> {
                match value {
                    $(crate::db::Value::Text(text) if text == $text => Ok($name::$variant),)+
                    crate::db::Value::Text(other) => {
                        Err(format!("unknown {} {other:?}", stringify!($name)))
                    }
                    other => Err(format!("{other:?} is not a {}", stringify!($name))),
                }
            }
        }
    };
}

pub(crate) use text_enum;
