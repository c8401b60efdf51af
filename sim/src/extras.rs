//! Collections beyond the built-in entities, served like BigCommerce serves
//! them, so that a collection configured in govflow (not built in) can be
//! tested over HTTP: brands (`GET /v3/catalog/brands`, V3 paging, no date
//! filter) and coupons (`GET /v2/coupons`, a bare array, 204 past the end,
//! `min_id`/`max_id`, no date filter).
//!
//! They are seeded from their own random stream, so the built-in entities of
//! a seed are the same with or without them, and mutated only by the kinds
//! that name them (`brand_upsert`, `coupon_upsert`, `coupon_delete`), never by
//! a mutation call without `kinds`.

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use super::dates::{Date, Style, Ts};

/// The random stream of the extra collections (xored into the seed).
const EXTRAS_STREAM: u64 = 0xB4A4_D5C0_0905;

/// The mutation kinds of the extra collections; applied only when named.
pub const EXTRA_KINDS: [&str; 3] = ["brand_upsert", "coupon_upsert", "coupon_delete"];

/// A brand (`/v3/catalog/brands`).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Brand {
    pub id: u64,
    pub name: String,
    pub meta_keywords: Vec<String>,
    pub image_url: String,
}

/// A coupon (`/v2/coupons`).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Coupon {
    pub id: u64,
    pub name: String,
    pub kind: &'static str,
    /// Cents.
    pub amount: super::model::Cents,
    pub enabled: bool,
    pub code: String,
    pub num_uses: u64,
    pub date_created: Ts,
}

/// Brands and coupons of a store.
#[derive(Clone, Debug, Default)]
pub(crate) struct Extras {
    pub brands: BTreeMap<u64, Brand>,
    pub coupons: BTreeMap<u64, Coupon>,
    next_brand: u64,
    next_coupon: u64,
}

const BRAND_WORDS: [&str; 8] = [
    "Common Good",
    "Ofs",
    "Sagaform",
    "Barrière",
    "Nordic Loom",
    "Kōbō",
    "Sunfield",
    "Arc & Pine",
];
const COUPON_TYPES: [&str; 4] = [
    "per_item_discount",
    "percentage_discount",
    "per_total_discount",
    "free_shipping",
];

impl Extras {
    /// The seeded collections of `seed`: a few brands and coupons per
    /// `products` products.
    pub(crate) fn seed(seed: u64, products: usize, now: Ts) -> Extras {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ EXTRAS_STREAM);
        let mut extras = Extras {
            next_brand: 1,
            next_coupon: 1,
            ..Extras::default()
        };
        for _ in 0..(products / 20).clamp(3, 50) {
            extras.new_brand(&mut rng);
        }
        for _ in 0..(products / 10).clamp(5, 200) {
            let created = now - rng.random_range(0..86_400 * 365);
            extras.new_coupon(&mut rng, created);
        }
        extras
    }

    fn new_brand(&mut self, rng: &mut ChaCha8Rng) -> u64 {
        let id = self.next_brand;
        self.next_brand += 1;
        let word = BRAND_WORDS[rng.random_range(0..BRAND_WORDS.len())];
        self.brands.insert(
            id,
            Brand {
                id,
                name: format!("{word} {id}"),
                meta_keywords: vec![word.to_lowercase(), format!("b{id}")],
                image_url: String::new(),
            },
        );
        id
    }

    fn new_coupon(&mut self, rng: &mut ChaCha8Rng, created: Ts) -> u64 {
        let id = self.next_coupon;
        self.next_coupon += 1;
        self.coupons.insert(
            id,
            Coupon {
                id,
                name: format!("Coupon {id}"),
                kind: COUPON_TYPES[rng.random_range(0..COUPON_TYPES.len())],
                amount: rng.random_range(1..=500) * 50,
                enabled: rng.random_bool(0.8),
                code: format!("C{:06X}", rng.random_range(0..0xFF_FFFFu32)),
                num_uses: 0,
                date_created: created,
            },
        );
        id
    }

    /// Applies one mutation of kind `kind` (one of [`EXTRA_KINDS`]); returns
    /// the entity and id it changed, `None` when it had nothing to act on.
    pub(crate) fn mutate(
        &mut self,
        rng: &mut ChaCha8Rng,
        kind: &str,
        t: Ts,
    ) -> Option<(&'static str, u64)> {
        match kind {
            "brand_upsert" => {
                if self.brands.is_empty() || rng.random_bool(0.3) {
                    Some(("brand", self.new_brand(rng)))
                } else {
                    let id = pick(rng, self.brands.keys())?;
                    let brand = self.brands.get_mut(&id)?;
                    brand.image_url = format!("https://cdn.example.com/brands/{id}-{t}.png");
                    Some(("brand", id))
                }
            }
            "coupon_upsert" => {
                if self.coupons.is_empty() || rng.random_bool(0.3) {
                    Some(("coupon", self.new_coupon(rng, t)))
                } else {
                    let id = pick(rng, self.coupons.keys())?;
                    let coupon = self.coupons.get_mut(&id)?;
                    coupon.num_uses += 1;
                    coupon.enabled = !coupon.enabled || rng.random_bool(0.9);
                    Some(("coupon", id))
                }
            }
            "coupon_delete" => {
                let id = pick(rng, self.coupons.keys())?;
                self.coupons.remove(&id);
                Some(("coupon", id))
            }
            _ => None,
        }
    }
}

fn pick<'a>(rng: &mut ChaCha8Rng, keys: impl ExactSizeIterator<Item = &'a u64>) -> Option<u64> {
    let n = keys.len();
    if n == 0 {
        return None;
    }
    let at = rng.random_range(0..n);
    keys.copied().nth(at)
}

/// A brand as `/v3/catalog/brands` renders it.
pub(crate) fn brand_json(b: &Brand) -> serde_json::Value {
    let slug = b.name.replace(' ', "-");
    json!({
        "id": b.id,
        "name": b.name,
        "page_title": b.name,
        "meta_keywords": b.meta_keywords,
        "meta_description": "",
        "image_url": b.image_url,
        "search_keywords": b.meta_keywords.join(","),
        "custom_url": {"url": format!("/brands/{slug}.html"), "is_customized": false},
    })
}

/// A coupon as `/v2/coupons` renders it (money as a string, RFC 2822 dates).
pub(crate) fn coupon_json(c: &Coupon) -> serde_json::Value {
    json!({
        "id": c.id,
        "name": c.name,
        "type": c.kind,
        "amount": super::render::Money(c.amount).to_string(),
        "min_purchase": "0.0000",
        "expires": "",
        "enabled": c.enabled,
        "code": c.code,
        "applies_to": {"entity": "categories", "ids": [0]},
        "num_uses": c.num_uses,
        "max_uses": 0,
        "max_uses_per_customer": 0,
        "restricted_to": [],
        "shipping_methods": null,
        "date_created": Date(c.date_created, Style::Rfc2822).to_string(),
    })
}
