//! `/`: the page. It is self-contained (no external scripts, styles or fonts, so it works
//! on a LAN with no internet) and static: its script draws everything from the JSON API.

use std::io::{self, Write};

use super::response::{self, OK};

const PAGE: &str = include_str!("page.html");

pub(crate) fn send(out: &mut impl Write, head_only: bool) -> io::Result<()> {
    response::send(
        out,
        OK,
        "text/html; charset=utf-8",
        PAGE.as_bytes(),
        head_only,
    )
}
