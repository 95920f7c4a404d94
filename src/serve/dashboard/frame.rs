//! The frame every dashboard view lives in (`web/templates/base.html`): the
//! bar with the host's name and a tab per view, the firing alerts counted on
//! the Alerts tab so they are seen from any view.

use crate::serve::Shared;

/// The dashboard's views, in tab order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    Overview,
    Who,
    Services,
    Alerts,
    Graph,
}

impl View {
    const ALL: [View; 5] = [
        View::Overview,
        View::Who,
        View::Services,
        View::Alerts,
        View::Graph,
    ];

    fn label(self) -> &'static str {
        match self {
            View::Overview => "Overview",
            View::Who => "Who",
            View::Services => "Services",
            View::Alerts => "Alerts",
            View::Graph => "Graph",
        }
    }

    fn href(self) -> &'static str {
        match self {
            View::Overview => "/",
            View::Who => "/who",
            View::Services => "/services",
            View::Alerts => "/alerts",
            View::Graph => "/graph",
        }
    }
}

pub struct Frame {
    pub host: String,
    pub views: Vec<Tab>,
}

pub struct Tab {
    pub label: &'static str,
    pub href: &'static str,
    pub current: bool,
    /// A count shown on the tab (firing alerts); 0 shows none.
    pub badge: usize,
}

impl Frame {
    pub fn new(current: View, shared: &Shared) -> Frame {
        let firing = shared
            .alerting
            .as_ref()
            .map_or(0, |a| a.rules.firing_count());
        Frame {
            host: std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_else(|_| "this machine".to_string()),
            views: View::ALL
                .into_iter()
                .map(|view| Tab {
                    label: view.label(),
                    href: view.href(),
                    current: view == current,
                    badge: if view == View::Alerts { firing } else { 0 },
                })
                .collect(),
        }
    }
}
