//! The error of any stage before execution: what stops dp from running a project at all.

/// A project dp cannot run: every stage's error, with its diagnostic as the stage made it.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Load(#[from] crate::project::LoadError),

    #[error(transparent)]
    #[diagnostic(transparent)]
    Render(#[from] crate::render::RenderError),

    #[error(transparent)]
    #[diagnostic(transparent)]
    Graph(#[from] crate::graph::GraphError),

    #[error(transparent)]
    #[diagnostic(transparent)]
    Select(#[from] crate::graph::SelectError),

    #[error(transparent)]
    #[diagnostic(transparent)]
    Plan(#[from] crate::compile::PlanError),

    #[error(transparent)]
    #[diagnostic(transparent)]
    Checked(crate::check::CheckError),

    #[error(transparent)]
    #[diagnostic(transparent)]
    Docs(#[from] crate::docs::DocsError),

    #[error(transparent)]
    #[diagnostic(transparent)]
    Lineage(#[from] crate::docs::LineageError),

    #[error(transparent)]
    #[diagnostic(transparent)]
    Ops(#[from] crate::ops::OpsError),

    #[error(transparent)]
    #[diagnostic(transparent)]
    Session(#[from] crate::session::SessionError),

    #[error(transparent)]
    #[diagnostic(transparent)]
    Deps(#[from] crate::ops::DepsError),

    #[error("{} problems found", problems.len())]
    #[diagnostic(code(dp::problems))]
    Check {
        #[related]
        problems: Vec<Error>,
    },

    #[error("cannot write {}", path.display())]
    #[diagnostic(code(dp::write))]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// Whether dp could not look at the project at all (no project folder, a file it cannot
    /// read or write, bad command-line arguments), rather than finding problems in its files.
    pub fn cannot_run(&self) -> bool {
        use crate::project::LoadError;
        matches!(
            self,
            Error::Load(
                LoadError::NotFound { .. }
                    | LoadError::Io { .. }
                    | LoadError::UnsafeEnvironment { .. }
            ) | Error::Render(crate::render::RenderError::InvalidVars { .. })
                | Error::Load(LoadError::UnknownTarget { .. })
                | Error::Select(_)
                | Error::Io { .. }
                | Error::Session(crate::session::SessionError::ClusterUnavailable { .. })
                | Error::Docs(crate::docs::DocsError::Io { .. })
        )
    }
}
