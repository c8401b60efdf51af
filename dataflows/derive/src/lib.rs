//! `#[derive(Record)]`: a built-in table of govflow's catalogue, declared once
//! by its row type.
//!
//! ```text
//! /// A row of `raw_bc_order`.
//! #[derive(Record)]
//! #[record(table = "raw_bc_order", key = "id", grain = "one row per order", origin = "bigcommerce")]
//! pub struct RawBcOrder {
//!     /// Order id.
//!     pub id: i64,
//!     /// When the order was placed.
//!     pub created_at: Micros,
//!     ...
//! }
//! ```
//!
//! Every field is a column, named like the field, in declaration order, with
//! the field's doc comment as its description. The column type follows the
//! field's type: `i64`, `bool`, `String` and `Text` (text), `Money`, `Micros`
//! (a timestamp: `Micros` is an alias of `i64`, so the name decides), enums
//! that implement `TextValue` (text), and `Option<T>` for a nullable `T`.
//!
//! Struct attributes (`#[record(...)]`):
//! - `table`: the table's name; `grain`: one line on what a row is;
//! - `key`: the key column(s), comma-separated; with a single `i64` key field
//!   the row's key (its `Keyed` impl) is that field, otherwise `key_fn` names
//!   a function `fn(&Self) -> RowKey`;
//! - `key_column`: the warehouse's key column when it is not a field (a
//!   synthetic text column holding the key's text, e.g. `_errors.error_id`);
//! - `origin`: the source kind that fills a raw table (`bigcommerce`,
//!   `postgres`), or `model`;
//! - `reads`: the tables a model reads, comma-separated.
//!
//! - `projection`: with fields marked `#[record(read)]` (those the models
//!   read), generates the struct of that name holding them and the row's
//!   fingerprint, `project()` and `READ_COLUMNS` (see `dataflows::projection`).
//!
//! Field attributes: `#[record(column = "_payload")]` names the column when it
//! is not the field's name; `#[record(read)]` puts it in the projection. A `Payload` field is a nullable `json` column
//! holding the record's JSON (see `dataflows::payload`).

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as Tokens};
use quote::quote;
use syn::{
    Data, DeriveInput, Fields, GenericArgument, LitStr, PathArguments, Type, parse_macro_input,
};

/// Implements `crate::catalog::Record` (the table's declaration) and
/// `crate::rows::table::Keyed` (the row's key) for a struct with named fields.
#[proc_macro_derive(Record, attributes(record))]
pub fn derive_record(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    match expand(&input) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

#[derive(Default)]
struct Attrs {
    table: Option<LitStr>,
    key: Option<LitStr>,
    key_fn: Option<syn::Path>,
    key_column: Option<LitStr>,
    grain: Option<LitStr>,
    origin: Option<LitStr>,
    reads: Option<LitStr>,
    projection: Option<syn::Ident>,
}

fn attrs(input: &DeriveInput) -> syn::Result<Attrs> {
    let mut out = Attrs::default();
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("record")) {
        attr.parse_nested_meta(|meta| {
            let value = || -> syn::Result<LitStr> { meta.value()?.parse() };
            if meta.path.is_ident("table") {
                out.table = Some(value()?);
            } else if meta.path.is_ident("key") {
                out.key = Some(value()?);
            } else if meta.path.is_ident("key_fn") {
                out.key_fn = Some(value()?.parse()?);
            } else if meta.path.is_ident("key_column") {
                out.key_column = Some(value()?);
            } else if meta.path.is_ident("grain") {
                out.grain = Some(value()?);
            } else if meta.path.is_ident("origin") {
                out.origin = Some(value()?);
            } else if meta.path.is_ident("reads") {
                out.reads = Some(value()?);
            } else if meta.path.is_ident("projection") {
                out.projection = Some(value()?.parse()?);
            } else {
                return Err(meta.error("unknown record attribute"));
            }
            Ok(())
        })?;
    }
    Ok(out)
}

fn required(value: Option<LitStr>, what: &str) -> syn::Result<LitStr> {
    value.ok_or_else(|| {
        syn::Error::new(
            Span::call_site(),
            format!("#[record({what} = \"...\")] is required"),
        )
    })
}

/// The comma-separated names of `list`, trimmed.
fn names(list: &Option<LitStr>) -> Vec<String> {
    list.as_ref()
        .map(|l| {
            l.value()
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// The doc comment of a field or struct, lines joined by spaces.
fn doc(attrs: &[syn::Attribute]) -> String {
    let mut lines = Vec::new();
    for attr in attrs.iter().filter(|a| a.path().is_ident("doc")) {
        if let syn::Meta::NameValue(nv) = &attr.meta
            && let syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(s),
                ..
            }) = &nv.value
        {
            lines.push(s.value().trim().to_string());
        }
    }
    lines.join(" ")
}

/// The codec type of a field's type: `Nullable<..>` for `Option`, the
/// timestamp codec for `Micros`, `Plain<T>` otherwise.
fn codec(ty: &Type) -> Tokens {
    if let Type::Path(path) = ty
        && let Some(last) = path.path.segments.last()
    {
        if last.ident == "Option"
            && let PathArguments::AngleBracketed(args) = &last.arguments
            && let Some(GenericArgument::Type(inner)) = args.args.first()
        {
            let inner = codec(inner);
            return quote!(crate::catalog::Nullable<#inner>);
        }
        if last.ident == "Micros" {
            return quote!(crate::catalog::Timestamp);
        }
        if last.ident == "Payload" {
            return quote!(crate::payload::PayloadCodec);
        }
    }
    quote!(crate::catalog::Plain<#ty>)
}

/// A field's column name (`#[record(column = "...")]`, else the field's)
/// and whether models read it (`#[record(read)]`).
fn field_attrs(field: &syn::Field) -> syn::Result<(String, bool)> {
    let mut name = field
        .ident
        .as_ref()
        .map(|i| i.to_string())
        .unwrap_or_default();
    let mut read = false;
    for attr in field.attrs.iter().filter(|a| a.path().is_ident("record")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("column") {
                name = meta.value()?.parse::<LitStr>()?.value();
                Ok(())
            } else if meta.path.is_ident("read") {
                read = true;
                Ok(())
            } else {
                Err(meta.error("unknown field attribute"))
            }
        })?;
    }
    Ok((name, read))
}

/// With `projection = "Name"`: the struct `Name` of the fields marked
/// `#[record(read)]` and the whole row's fingerprint, `project()` and
/// `READ_COLUMNS` (see `dataflows::projection`).
fn projection(
    name: &syn::Ident,
    projection: &syn::Ident,
    fields: &syn::FieldsNamed,
    read: &[bool],
    column_names: &[String],
) -> Tokens {
    let kept: Vec<&syn::Field> = fields
        .named
        .iter()
        .zip(read)
        .filter_map(|(f, r)| r.then_some(f))
        .collect();
    let idents: Vec<_> = kept.iter().filter_map(|f| f.ident.clone()).collect();
    let types: Vec<_> = kept.iter().map(|f| f.ty.clone()).collect();
    let docs: Vec<String> = kept.iter().map(|f| doc(&f.attrs)).collect();
    let columns: Vec<&String> = column_names
        .iter()
        .zip(read)
        .filter_map(|(c, r)| r.then_some(c))
        .collect();
    let left_out: Vec<String> = column_names
        .iter()
        .zip(read)
        .filter(|(_, r)| !**r)
        .map(|(c, _)| format!("`{c}`"))
        .collect();
    let struct_doc = format!(
        "What the models read of a [`{name}`]: the dataflow holds this projection, not the \
         row (see [`crate::projection`]). It leaves out {}; the fingerprint of the whole row \
         stands for them, so a change of any column is still a change.",
        left_out.join(", ")
    );
    quote! {
        #[doc = #struct_doc]
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, ::serde::Serialize, ::serde::Deserialize)]
        pub struct #projection {
            #(#[doc = #docs] pub #idents: #types,)*
            /// [`crate::projection::fingerprint`] of the whole row.
            pub fingerprint: u64,
        }

        impl #name {
            /// The columns the models read (those of its projection).
            pub const READ_COLUMNS: &'static [&'static str] = &[#(#columns),*];

            /// The row as the models read it.
            pub fn project(&self) -> #projection {
                #projection {
                    #(#idents: ::core::clone::Clone::clone(&self.#idents),)*
                    fingerprint: crate::projection::fingerprint(self),
                }
            }
        }
    }
}

fn expand(input: &DeriveInput) -> syn::Result<Tokens> {
    let name = &input.ident;
    let attrs = attrs(input)?;
    let table = required(attrs.table, "table")?;
    let grain = required(attrs.grain, "grain")?;
    let origin = required(attrs.origin, "origin")?;
    let key = names(&attrs.key);
    let reads = names(&attrs.reads);
    if key.is_empty() {
        return Err(syn::Error::new(
            Span::call_site(),
            "#[record(key = \"...\")] is required",
        ));
    }
    let Data::Struct(data) = &input.data else {
        return Err(syn::Error::new(
            Span::call_site(),
            "Record is derived for structs",
        ));
    };
    let Fields::Named(fields) = &data.fields else {
        return Err(syn::Error::new(
            Span::call_site(),
            "Record needs named fields",
        ));
    };
    let idents: Vec<_> = fields
        .named
        .iter()
        .filter_map(|f| f.ident.clone())
        .collect();
    let (column_names, read): (Vec<String>, Vec<bool>) = fields
        .named
        .iter()
        .map(field_attrs)
        .collect::<syn::Result<Vec<_>>>()?
        .into_iter()
        .unzip();
    let projection = match &attrs.projection {
        Some(projection) => self::projection(name, projection, fields, &read, &column_names),
        None if read.contains(&true) => {
            return Err(syn::Error::new(
                Span::call_site(),
                "#[record(read)] needs #[record(projection = \"...\")]",
            ));
        }
        None => Tokens::new(),
    };
    for k in &key {
        if !column_names.contains(k) && attrs.key_column.is_none() {
            return Err(syn::Error::new(
                Span::call_site(),
                format!("key column {k} is not a field"),
            ));
        }
    }
    let codecs: Vec<Tokens> = fields.named.iter().map(|f| codec(&f.ty)).collect();
    let docs: Vec<String> = fields.named.iter().map(|f| doc(&f.attrs)).collect();
    let indices: Vec<usize> = (0..idents.len()).collect();
    let key_column = match (&attrs.key_column, key.as_slice()) {
        (Some(column), _) => column.value(),
        (None, [single]) => single.clone(),
        (None, _) => {
            return Err(syn::Error::new(
                Span::call_site(),
                "a composite key needs key_column",
            ));
        }
    };
    let synthetic = !column_names.contains(&key_column);
    let row_key = match (&attrs.key_fn, key.as_slice()) {
        (Some(f), _) => quote!(#f(self)),
        (None, [single]) => {
            let field = syn::Ident::new(single, Span::call_site());
            quote!(crate::rows::table::RowKey::Id(self.#field))
        }
        (None, _) => {
            return Err(syn::Error::new(
                Span::call_site(),
                "a composite key needs key_fn",
            ));
        }
    };
    let table_doc = doc(&input.attrs);
    Ok(quote! {
        impl crate::catalog::Record for #name {
            const NAME: &'static str = #table;
            const KEY: &'static [&'static str] = &[#(#key),*];
            const KEY_COLUMN: &'static str = #key_column;
            const ORIGIN: &'static str = #origin;

            fn table_def() -> crate::catalog::TableDef {
                crate::catalog::TableDef {
                    name: #table.to_string(),
                    doc: #table_doc.to_string(),
                    grain: #grain.to_string(),
                    key: vec![#(#key.to_string()),*],
                    key_column: #key_column.to_string(),
                    synthetic_key: #synthetic,
                    origin: crate::catalog::Origin::parse(#origin),
                    reads: vec![#(#reads.to_string()),*],
                    columns: vec![#(crate::catalog::ColumnDef {
                        name: #column_names.to_string(),
                        ty: <#codecs as crate::catalog::Codec>::TYPE,
                        nullable: <#codecs as crate::catalog::Codec>::NULLABLE,
                        doc: #docs.to_string(),
                    }),*],
                }
            }

            fn cell(&self, column: usize) -> crate::catalog::Cell<'_> {
                match column {
                    #(#indices => <#codecs as crate::catalog::Codec>::cell(&self.#idents),)*
                    _ => crate::catalog::Cell::Null,
                }
            }

            fn from_values(
                values: &mut dyn Iterator<Item = crate::catalog::Value>,
            ) -> Result<Self, crate::catalog::ValueError> {
                Ok(#name {
                    #(#idents: <#codecs as crate::catalog::Codec>::from_value(
                        values.next().unwrap_or(crate::catalog::Value::Null),
                    ).map_err(|detail| crate::catalog::ValueError {
                        column: #column_names,
                        detail,
                    })?,)*
                })
            }
        }

        impl crate::rows::table::Keyed for #name {
            fn row_key(&self) -> crate::rows::table::RowKey {
                #row_key
            }
        }

        #projection
    })
}
