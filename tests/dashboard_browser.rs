//! The dashboard in a real browser: headless Chromium, driven over the
//! DevTools protocol, against one real sonde that has collected for a few
//! seconds under a small workload (disk writes, execs, TCP connects). Every
//! view loads at desktop and phone width with no console error, no failed
//! request and no request leaving sonde; its charts hold data; the tabs,
//! the range picker and drag-to-zoom change what is shown; a URL opened
//! again shows the same range; the script's read-out and legend toggling
//! work. Screenshots of every view at both widths (and the Overview in the
//! dark theme) are written to `target/screenshots/` (or
//! `$CARGO_TARGET_DIR/screenshots/`) for a person to look at.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::chromium::{Chromium, Page};
use common::Sonde;

/// The views, by a name for their screenshots, and the path they open at.
const VIEWS: &[(&str, &str)] = &[
    ("overview", "/?range=5m"),
    ("kernel", "/kernel?range=5m"),
    ("who", "/who?range=5m"),
    ("programs", "/programs?range=5m"),
    ("alerts", "/alerts"),
    (
        "graph",
        "/graph?g0.expr=rate(node_cpu_seconds_total%5B1m%5D)&g0.range_input=5m",
    ),
    ("status", "/status?range=5m"),
];

const DESKTOP: (u32, u32) = (1280, 900);
const PHONE: (u32, u32) = (390, 844);

/// Where screenshots go: `screenshots/` in the target directory this test
/// binary was built into (…/target/<triple>/release/deps/<binary>).
fn screenshots() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // Cargo tags the target directory and its per-triple one: the outer.
    let target = exe
        .ancestors()
        .filter(|dir| dir.join("CACHEDIR.TAG").exists())
        .last()
        .unwrap_or_else(|| exe.parent().unwrap());
    target.join("screenshots")
}

/// Gives the collectors something to count: synced writes (block I/O),
/// short-lived processes (execs, exits), loopback connects (TCP).
fn workload(sonde: &Sonde) {
    let file = sonde.data.0.join("workload");
    for round in 0..20 {
        std::fs::write(&file, vec![round as u8; 64 << 10]).unwrap();
        std::fs::File::open(&file).unwrap().sync_all().unwrap();
        let _ = std::process::Command::new("true").status();
        let _ = common::get(&format!("{}/-/healthy", sonde.base_url));
    }
}

/// Opens `url` and checks the load: no console error, no failed request,
/// nothing asked of another origin. Returns the page's events' start.
fn load(page: &mut Page, base: &str, url: &str) -> usize {
    let from = page.events.len();
    page.open(url);
    // Late events (a failed image, the script's errors) come in a moment.
    std::thread::sleep(Duration::from_millis(300));
    page.eval("1");
    let problems = page.problems(from);
    assert!(problems.is_empty(), "{url}:\n{}", problems.join("\n"));
    for requested in page.requested(from) {
        assert!(
            requested.starts_with(base) || requested.starts_with("data:"),
            "{url} asked for {requested}: everything must come from sonde"
        );
    }
    from
}

fn text(page: &mut Page, expression: &str) -> String {
    page.eval(expression)
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn count(page: &mut Page, selector: &str) -> u64 {
    page.eval(&format!("document.querySelectorAll({selector:?}).length"))
        .as_u64()
        .unwrap()
}

/// Loads the page at `url` by clicking the first element matching
/// `selector` and waiting for the new page's load.
fn click(page: &mut Page, selector: &str) {
    let from = page.events.len();
    let found = page.eval(&format!(
        "(() => {{ const e = document.querySelector({selector:?}); if (e) e.click(); return !!e; }})()"
    ));
    assert_eq!(found, true, "nothing matches {selector}");
    page.wait_event("Page.loadEventFired", from, Duration::from_secs(60));
}

/// The first chart's [start, end] in ms, as its SVG says.
fn span(page: &mut Page) -> Vec<i64> {
    page.eval("(() => { const s = document.querySelector('.plot svg'); return [Number(s.dataset.start), Number(s.dataset.end)]; })()")
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect()
}

#[test]
fn every_view_works_in_a_real_browser() {
    let sonde = Sonde::start("");
    let base = sonde.base_url.clone();
    workload(&sonde);
    // Enough rounds (1 s each) for rates and heatmaps to have two samples.
    sonde.wait_rounds(6);
    let browser = Chromium::start();
    let mut page = browser.page();
    let shots = screenshots();

    for (width, height, mobile, suffix) in [
        (DESKTOP.0, DESKTOP.1, false, "desktop"),
        (PHONE.0, PHONE.1, true, "phone"),
    ] {
        page.viewport(width, height, mobile);
        for (name, path) in VIEWS {
            load(&mut page, &base, &format!("{base}{path}"));
            page.screenshot(&shots.join(format!("{name}-{suffix}.png")));
            let overflow = page
                .eval("document.documentElement.scrollWidth")
                .as_u64()
                .unwrap();
            assert!(
                overflow <= u64::from(width) + 1,
                "{name} is {overflow} px wide at {width} px: it must fit the {suffix}'s width"
            );
        }
    }
    page.viewport(DESKTOP.0, DESKTOP.1, false);

    // Charts hold data: lines on the Overview, cells in the heatmaps.
    load(&mut page, &base, &format!("{base}/?range=5m"));
    assert_eq!(
        count(&mut page, ".plot svg[data-start]"),
        6,
        "six charts drawn"
    );
    assert!(
        count(&mut page, ".plot svg polyline") >= 6,
        "lines in the charts"
    );
    assert!(
        count(&mut page, ".offender tbody tr") > 0,
        "top offenders listed"
    );
    load(&mut page, &base, &format!("{base}/kernel?range=5m"));
    assert!(
        count(&mut page, "svg.heatmap path[class^=h]") > 0,
        "heatmap cells"
    );
    assert!(
        text(
            &mut page,
            "document.querySelector('#syscall-latency').textContent"
        )
        .contains("p99"),
        "the syscall heatmap has its p99 line"
    );
    let syscall = text(
        &mut page,
        "document.querySelector('#syscall option:nth-child(2)').value",
    );
    assert!(!syscall.is_empty(), "the busiest syscalls are offered");
    load(
        &mut page,
        &base,
        &format!("{base}/kernel?range=5m&syscall={syscall}"),
    );
    assert!(
        text(
            &mut page,
            "document.querySelector('#syscall-latency h2').textContent"
        )
        .ends_with(&syscall),
        "choosing a syscall draws its own heatmap"
    );
    load(&mut page, &base, &format!("{base}/status?range=5m"));
    assert!(
        text(&mut page, "document.body.textContent").contains("collector syscalls"),
        "the Status view says how each collector loaded"
    );

    // The tabs keep the range; the range picker changes it.
    load(&mut page, &base, &format!("{base}/?range=5m"));
    click(&mut page, "nav.views a[href^='/kernel']");
    assert_eq!(text(&mut page, "location.pathname"), "/kernel");
    assert_eq!(text(&mut page, "location.search"), "?range=5m");
    click(&mut page, ".controls a[href*='range=15m']");
    assert_eq!(text(&mut page, "location.search"), "?range=15m");
    assert!(
        text(&mut page, "document.querySelector('footer').textContent").contains("the last 15m")
    );
    assert_eq!(
        text(
            &mut page,
            "document.querySelector('.controls a[aria-current=page]').textContent"
        ),
        "15m"
    );

    // Drag-to-zoom: a drag across the right of the first chart (sonde has
    // collected for seconds only) opens the dragged span, which a second
    // load of the same URL shows again.
    load(&mut page, &base, &format!("{base}/?range=5m"));
    let before = span(&mut page);
    let bounds = page.eval(
        "(() => { const s = document.querySelector('.plot svg'); s.scrollIntoView(); const r = s.getBoundingClientRect(); return [r.left, r.width, r.top + r.height / 2]; })()",
    );
    let (left, width, y) = (
        bounds[0].as_f64().unwrap(),
        bounds[1].as_f64().unwrap(),
        bounds[2].as_f64().unwrap(),
    );
    // Hover first: the read-out shows the time and the lines' values.
    let from = page.events.len();
    page.call(
        "Input.dispatchMouseEvent",
        serde_json::json!({"type": "mouseMoved", "x": left + width * 0.6, "y": y}),
    );
    let readout = text(
        &mut page,
        "document.querySelector('.readout:not([hidden])')?.textContent ?? ''",
    );
    assert!(
        readout.contains("UTC"),
        "no read-out at the pointer: {readout:?}"
    );
    page.drag(left + width * 0.5, left + width * 0.97, y);
    page.wait_event("Page.loadEventFired", from, Duration::from_secs(60));
    let zoomed = text(&mut page, "location.href");
    assert!(
        zoomed.contains("from=") && zoomed.contains("to="),
        "{zoomed}"
    );
    let after = span(&mut page);
    assert!(
        after[0] > before[0] && after[1] < before[1],
        "the zoomed range {after:?} lies inside {before:?}"
    );
    assert_eq!(
        page.eval("document.querySelector('details.custom').open"),
        true,
        "a custom range shows its from and to"
    );
    load(&mut page, &base, &zoomed);
    let again = span(&mut page);
    assert_eq!(again, after, "the URL round-trips to the same range");
    // And the tabs carry the zoomed range on.
    click(&mut page, "nav.views a[href^='/who']");
    assert!(text(&mut page, "location.search").contains("from="));

    // Legend toggling hides a line and shows it again.
    load(&mut page, &base, &format!("{base}/?range=5m"));
    let shown = count(&mut page, "#memory svg .hidden");
    page.eval("document.querySelector('#memory .legend tbody tr').click()");
    assert!(
        count(&mut page, "#memory svg .hidden") > shown,
        "a click hides the line"
    );
    page.eval("document.querySelector('#memory .legend tbody tr').click()");
    assert_eq!(count(&mut page, "#memory svg .hidden"), shown);

    // The dark theme follows the browser's preference.
    let light = text(
        &mut page,
        "getComputedStyle(document.documentElement).backgroundColor",
    );
    page.color_scheme("dark");
    let dark = text(
        &mut page,
        "getComputedStyle(document.documentElement).backgroundColor",
    );
    assert_ne!(light, dark, "prefers-color-scheme: dark changes the page");
    page.screenshot(&shots.join("overview-dark.png"));
    load(&mut page, &base, &format!("{base}/kernel?range=5m"));
    page.screenshot(&shots.join("kernel-dark.png"));
    page.color_scheme("light");
    eprintln!("screenshots in {}", shots.display());
}
