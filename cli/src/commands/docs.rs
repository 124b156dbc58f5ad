//! `dp docs generate` and `dp docs serve`.

use std::path::{Component, Path, PathBuf};
use std::process::ExitCode;

use crate::args::{CoverArgs, DocsCommand, GlobalArgs, ServeArgs};

pub fn run(global: &GlobalArgs, command: &DocsCommand) -> miette::Result<ExitCode> {
    match command {
        DocsCommand::Generate(args) => generate(global, args),
        DocsCommand::Serve(args) => serve(global, args),
    }
}

fn generate(global: &GlobalArgs, args: &CoverArgs) -> miette::Result<ExitCode> {
    let prepared = super::prepare_partial(global, &args.select)?;
    let runtime = super::runtime()?;
    let (generated, failures) = runtime.block_on(prepared.generate_docs(args.fail_fast))?;
    let covered = super::show_failures(failures);
    if !global.quiet {
        let mut text = String::new();
        for path in &generated.files {
            let shown = path.strip_prefix(&prepared.project.root).unwrap_or(path);
            text.push_str(&format!("{}\n", shown.display()));
        }
        text.push_str(&format!(
            "Documented {} models ({} with a table), {} sources, {} columns\n",
            generated.models, generated.tables, generated.sources, generated.columns
        ));
        super::out(&text);
    }
    Ok(super::exit_code(covered))
}

/// Serve `target/` on 127.0.0.1 until the process is stopped.
fn serve(global: &GlobalArgs, args: &ServeArgs) -> miette::Result<ExitCode> {
    let project = dp_engine::project::find_root(&global.project_dir)?;
    let root = dp_engine::project::load(&project)?.target_dir();
    if !root.join("docs").join("index.html").is_file() {
        return Err(miette::miette!(
            code = "dp::no_docs",
            help = "run `dp docs generate` first",
            "{} has no docs/index.html",
            root.display()
        ));
    }
    let server = tiny_http::Server::http(("127.0.0.1", args.port)).map_err(|e| {
        miette::miette!(
            code = "dp::serve",
            "cannot listen on 127.0.0.1:{}: {e}",
            args.port
        )
    })?;
    let address = server
        .server_addr()
        .to_ip()
        .ok_or_else(|| miette::miette!("the server has no IP address"))?;
    super::out(&format!(
        "Serving {} at http://{address}/docs/index.html (Ctrl-C stops)\n",
        root.display()
    ));
    // Only this machine's own names: a web page elsewhere that rebinds its DNS name to
    // 127.0.0.1 gets nothing.
    let hosts = [
        format!("127.0.0.1:{}", address.port()),
        format!("localhost:{}", address.port()),
    ];
    let root = root
        .canonicalize()
        .map_err(|e| miette::miette!("cannot read {}: {e}", root.display()))?;
    for request in server.incoming_requests() {
        let host_allowed = request
            .headers()
            .iter()
            .find(|header| header.field.equiv("Host"))
            .is_some_and(|host| hosts.iter().any(|allowed| host.value.as_str() == allowed));
        let response = match host_allowed {
            true => respond(&root, request.url()),
            false => tiny_http::Response::from_data(b"forbidden".to_vec()).with_status_code(403),
        };
        if let Err(error) = request.respond(response) {
            tracing::debug!(%error, "a docs request was not answered");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The response to a GET of `url` from the files under `root` (canonical): nothing outside it
/// is read, also through a symbolic link.
fn respond(root: &Path, url: &str) -> tiny_http::Response<std::io::Cursor<Vec<u8>>> {
    let path = url.split(['?', '#']).next().unwrap_or_default();
    if path == "/" {
        let location =
            tiny_http::Header::from_bytes("Location", "/docs/index.html").expect("a valid header");
        return tiny_http::Response::from_data(Vec::new())
            .with_status_code(302)
            .with_header(location);
    }
    let not_found = || tiny_http::Response::from_data(b"not found".to_vec()).with_status_code(404);
    let relative = PathBuf::from(path.trim_start_matches('/'));
    let inside = relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)));
    let file = match root.join(&relative).canonicalize() {
        Ok(file) if inside && file.starts_with(root) && file.is_file() => file,
        _ => return not_found(),
    };
    match std::fs::read(&file) {
        Ok(bytes) => {
            let content_type = match relative.extension().and_then(|e| e.to_str()) {
                Some("html") => "text/html; charset=utf-8",
                Some("json") => "application/json",
                Some("png") => "image/png",
                Some("sql") | Some("txt") => "text/plain; charset=utf-8",
                _ => "application/octet-stream",
            };
            let header = tiny_http::Header::from_bytes("Content-Type", content_type)
                .expect("a valid header");
            tiny_http::Response::from_data(bytes).with_header(header)
        }
        Err(_) => not_found(),
    }
}
