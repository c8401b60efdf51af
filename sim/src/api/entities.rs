//! The handlers of each entity's routes: filters, sorting and paging over
//! the store, rendered as BigCommerce renders them.

use super::*;

fn lowercase_set(list: Option<Vec<String>>) -> Option<BTreeSet<String>> {
    list.map(|l| l.into_iter().map(|s| s.to_lowercase()).collect())
}

pub(super) fn customers(
    store: &Store,
    lx: &mut Lister<'_>,
    ctx: &Ctx,
    p: &Params,
) -> Result<Out, ApiError> {
    let ids = p.ids("id:in")?;
    let groups = p.ids("customer_group_id:in")?;
    let emails = lowercase_set(p.strings("email:in"));
    let (clo, chi) = p.date_range(
        "date_created:min",
        "date_created:max",
        BareDate::Midnight,
        false,
    )?;
    let spec = v3_spec(p, ids.as_ref())?;
    let (modified, sort, desc) = (spec.modified, spec.sort, spec.desc);
    let render_one = |buf: &mut Vec<u8>, id: u64| {
        if let Some(c) = store.customers.get(id) {
            render::customer(buf, ctx, c);
        }
    };
    if sort == Sort::Modified
        && !desc
        && ids.is_none()
        && groups.is_none()
        && emails.is_none()
        && (clo, chi) == (Ts::MIN, Ts::MAX)
    {
        // The keyset walk of a sync client: page straight off the date index.
        let paging = p.paging()?;
        let skip = paging.range(usize::MAX).start;
        let (page, total) = store
            .customers
            .modified_page(modified, None, skip, paging.limit, true);
        return v3_render(p, paging, &page, total, render_one);
    }
    let key = ids.is_none().then(|| {
        format!("customers|{groups:?}|{emails:?}|{clo}|{chi}|{modified:?}|{sort:?}|{desc}")
    });
    let list = lx.ids(key, || {
        store.customers.list(&spec, |c| {
            c.date_created >= clo
                && c.date_created <= chi
                && emails
                    .as_ref()
                    .is_none_or(|e| e.contains(&c.email.to_lowercase()))
                && groups
                    .as_ref()
                    .is_none_or(|g| g.contains(&(c.customer_group_id as u64)))
        })
    });
    v3_page(p, &list, render_one)
}

pub(super) fn metafields(
    store: &Store,
    lx: &mut Lister<'_>,
    ctx: &Ctx,
    p: &Params,
    customer: Option<u64>,
) -> Result<Out, ApiError> {
    let mut ids = p.ids("id:in")?;
    if let Some(c) = customer {
        let own: BTreeSet<u64> = store.metafields_of(c).into_iter().collect();
        ids = Some(match ids {
            Some(wanted) => own.intersection(&wanted).copied().collect(),
            None => own,
        });
    }
    let resources = p.ids("resource_id:in")?;
    let namespaces = join(p.strings("namespace"), p.strings("namespace:in"));
    let keys = join(p.strings("key"), p.strings("key:in"));
    let spec = v3_spec(p, ids.as_ref())?;
    let (modified, sort, desc) = (spec.modified, spec.sort, spec.desc);
    let key = ids.is_none().then(|| {
        format!("metafields|{resources:?}|{namespaces:?}|{keys:?}|{modified:?}|{sort:?}|{desc}")
    });
    let list = lx.ids(key, || {
        store.metafields.list(&spec, |m| {
            resources
                .as_ref()
                .is_none_or(|r| r.contains(&m.resource_id))
                && namespaces.as_ref().is_none_or(|n| n.contains(&m.namespace))
                && keys.as_ref().is_none_or(|k| k.contains(&m.key))
        })
    });
    v3_page(p, &list, |buf, id| {
        if let Some(m) = store.metafields.get(id) {
            render::metafield(buf, ctx, m);
        }
    })
}

fn join(a: Option<Vec<String>>, b: Option<Vec<String>>) -> Option<BTreeSet<String>> {
    match (a, b) {
        (None, None) => None,
        (a, b) => Some(a.into_iter().chain(b).flatten().collect()),
    }
}

pub(super) fn products(
    store: &Store,
    lx: &mut Lister<'_>,
    ctx: &Ctx,
    p: &Params,
) -> Result<Out, ApiError> {
    let ids = p.ids("id:in")?;
    let id_min = p.u64("id:min")?.unwrap_or(0);
    let id_max = p.u64("id:max")?.unwrap_or(u64::MAX);
    let modified = p.date_range(
        "date_modified:min",
        "date_modified:max",
        BareDate::NowTimeOfDay,
        false,
    )?;
    let sort = match p.get("sort") {
        None | Some("id") => Sort::Id,
        Some("date_modified") => Sort::Modified,
        Some(s) => {
            return Err(bad(
                "sort",
                format!("sort must be id or date_modified, got {s:?}"),
            ));
        }
    };
    let desc = match p.get("direction") {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(d) => {
            return Err(bad(
                "direction",
                format!("direction must be asc or desc, got {d:?}"),
            ));
        }
    };
    let with_variants = p.includes("variants");
    let spec = ListSpec {
        ids: ids.as_ref(),
        modified,
        sort,
        desc,
    };
    let key = ids
        .is_none()
        .then(|| format!("products|{id_min}|{id_max}|{modified:?}|{sort:?}|{desc}"));
    let list = lx.ids(key, || {
        store
            .products
            .list(&spec, |x| x.id >= id_min && x.id <= id_max)
    });
    v3_page(p, &list, |buf, id| {
        if let Some(x) = store.products.get(id) {
            render::product(buf, ctx, store, x, with_variants);
        }
    })
}

pub(super) fn product(store: &Store, ctx: &Ctx, p: &Params, id: u64) -> Result<Out, ApiError> {
    let x = store.products.get(id).ok_or(ApiError::NotFound)?;
    let mut buf = Vec::with_capacity(2048);
    buf.extend_from_slice(b"{\"data\":");
    render::product(&mut buf, ctx, store, x, p.includes("variants"));
    buf.extend_from_slice(b",\"meta\":{}}");
    Ok(Out::Json(buf))
}

/// Variant ids matching `id:in`/`variant_id:in`, `product_id:in` and `sku:in`, by id.
/// The variants a listing serves; `inventory` leaves out those without an
/// inventory item (dirty data).
fn variant_ids(
    store: &Store,
    lx: &mut Lister<'_>,
    p: &Params,
    id_param: &str,
    inventory: bool,
) -> Result<Arc<Vec<u64>>, ApiError> {
    let ids = p.ids(id_param)?;
    let products = p.ids("product_id:in")?;
    let skus: Option<BTreeSet<String>> = p.strings("sku:in").map(|l| l.into_iter().collect());
    let key = (ids.is_none() && products.is_none() && skus.is_none())
        .then(|| if inventory { "inventory" } else { "variants" }.to_string());
    let keep = |v: &crate::model::Variant| {
        (!inventory || v.inventory != crate::model::InventoryRow::Missing)
            && products.as_ref().is_none_or(|s| s.contains(&v.product_id))
            && skus.as_ref().is_none_or(|s| s.contains(&v.sku))
    };
    Ok(lx.ids(key, || match (&ids, &products) {
        (Some(ids), _) => ids
            .iter()
            .filter(|id| store.variants.get(id).is_some_and(keep))
            .copied()
            .collect(),
        (None, Some(products)) => products
            .iter()
            .filter_map(|id| store.products.get(*id))
            .flat_map(|x| x.variants.iter())
            .filter(|id| store.variants.get(id).is_some_and(keep))
            .copied()
            .collect::<BTreeSet<u64>>()
            .into_iter()
            .collect(),
        (None, None) => store
            .variants
            .values()
            .chain(store.orphan_inventory.values().filter(|_| inventory))
            .filter(|v| keep(v))
            .map(|v| v.id)
            .collect(),
    }))
}

pub(super) fn variants(
    store: &Store,
    lx: &mut Lister<'_>,
    ctx: &Ctx,
    p: &Params,
) -> Result<Out, ApiError> {
    let list = variant_ids(store, lx, p, "id:in", false)?;
    v3_page(p, &list, |buf, id| {
        if let Some(v) = store.variants.get(&id) {
            render::variant(buf, ctx, store, v);
        }
    })
}

pub(super) fn inventory(
    store: &Store,
    lx: &mut Lister<'_>,
    ctx: &Ctx,
    p: &Params,
) -> Result<Out, ApiError> {
    let list = variant_ids(store, lx, p, "variant_id:in", true)?;
    v3_page(p, &list, |buf, id| {
        if let Some(v) = store.variants.get(&id).or(store.orphan_inventory.get(&id)) {
            render::inventory_item(buf, ctx, v);
        }
    })
}

pub(super) fn orders(
    store: &Store,
    lx: &mut Lister<'_>,
    ctx: &Ctx,
    p: &Params,
) -> Result<Out, ApiError> {
    let min_id = p.u64("min_id")?.unwrap_or(0);
    let max_id = p.u64("max_id")?.unwrap_or(u64::MAX);
    let customer = p.u64("customer_id")?;
    let status = p.u64("status_id")?;
    let (clo, chi) = p.date_range(
        "min_date_created",
        "max_date_created",
        BareDate::Midnight,
        true,
    )?;
    let modified = p.date_range(
        "min_date_modified",
        "max_date_modified",
        BareDate::Midnight,
        true,
    )?;
    let archived = p.bool("is_deleted")?.unwrap_or(false);
    let (sort, desc) = sort_param(p)?;
    let with_consignments = p.includes("consignments.line_items") || p.includes("consignments");
    let spec = ListSpec {
        ids: None,
        modified,
        sort,
        desc,
    };
    let matches = |o: &Order| {
        o.is_deleted == archived
            && o.id >= min_id
            && o.id <= max_id
            && o.date_created >= clo
            && o.date_created <= chi
            && customer.is_none_or(|c| o.customer_id == c)
            && status.is_none_or(|s| o.status_id as u64 == s)
    };
    let render_one = |buf: &mut Vec<u8>, id: u64| {
        if let Some(o) = store.orders.get(id) {
            render::order(buf, ctx, o, with_consignments);
        }
    };
    if sort == Sort::Modified && !desc {
        // The keyset walk of a sync client: V2 has no total, so stop at the page.
        let paging = p.paging()?;
        let skip = paging.range(usize::MAX).start;
        let (page, _) =
            store
                .orders
                .modified_page(modified, Some(&matches), skip, paging.limit, false);
        return v2_render(&page, render_one);
    }
    let key = format!(
        "orders|{min_id}|{max_id}|{customer:?}|{status:?}|{clo}|{chi}|{modified:?}|{archived}|{sort:?}|{desc}"
    );
    let list = lx.ids(Some(key), || store.orders.list(&spec, matches));
    v2_page(p, &list, render_one)
}

pub(super) fn order(store: &Store, ctx: &Ctx, p: &Params, id: u64) -> Result<Out, ApiError> {
    let o = store.orders.get(id).ok_or(ApiError::NotFound)?;
    let mut buf = Vec::with_capacity(2048);
    let with_consignments = p.includes("consignments.line_items") || p.includes("consignments");
    render::order(&mut buf, ctx, o, with_consignments);
    Ok(Out::Json(buf))
}

pub(super) fn order_products(
    store: &Store,
    ctx: &Ctx,
    p: &Params,
    id: u64,
) -> Result<Out, ApiError> {
    let o = store.orders.get(id).ok_or(ApiError::NotFound)?;
    let idx: Vec<u64> = (0..o.items.len() as u64).collect();
    v2_page(p, &idx, |buf, i| {
        if let Some(it) = o.items.get(i as usize) {
            render::order_item(buf, ctx, it);
        }
    })
}
