//! Diagnostics with their secrets masked before miette lays them out. miette wraps a message,
//! a help or a label to the terminal's width, and a secret wrapped across two lines is no longer
//! found in the drawn text; so every string of a diagnostic (and of its causes and related
//! diagnostics, and its source code, with the labels' spans moved to match) is masked first.

use std::fmt;
use std::ops::Range;

use dp_engine::report::{MASK, mask, secret_ranges};
use miette::{
    Diagnostic, LabeledSpan, MietteHandlerOpts, NamedSource, ReportHandler, Severity, SourceCode,
    SourceSpan,
};

/// `diagnostic` drawn as miette draws it for stderr (colour and width of the terminal; the width
/// given by `COLUMNS` when it is set), with every secret masked before the layout.
pub fn render(diagnostic: &dyn Diagnostic) -> String {
    let mut options = MietteHandlerOpts::new();
    if let Some(columns) = columns() {
        options = options.width(columns);
    }
    let handler = options.build();
    let masked = Masked::new(diagnostic);
    let text = Shown(&handler, &masked).to_string();
    // Masked before the layout already; this catches nothing that miette invented.
    mask(&text).into_owned()
}

/// The terminal's width as `COLUMNS` gives it, when it does.
pub fn columns() -> Option<usize> {
    std::env::var("COLUMNS")
        .ok()?
        .trim()
        .parse()
        .ok()
        .filter(|&width| width > 0)
}

struct Shown<'a>(&'a dyn ReportHandler, &'a dyn Diagnostic);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.debug(self.1, f)
    }
}

/// A copy of a diagnostic whose every string is masked.
pub struct Masked {
    message: String,
    code: Option<String>,
    severity: Option<Severity>,
    help: Option<String>,
    url: Option<String>,
    source_code: Option<Box<dyn SourceCode>>,
    labels: Vec<LabeledSpan>,
    related: Vec<Masked>,
    /// The next cause, and whether the original gave it as a diagnostic (miette draws the two
    /// differently).
    cause: Option<Box<Masked>>,
    cause_is_diagnostic: bool,
}

impl Masked {
    pub fn new(diagnostic: &dyn Diagnostic) -> Self {
        Self::of_diagnostic(diagnostic, None)
    }

    /// `parent` is the source code a diagnostic without its own is drawn against.
    fn of_diagnostic(diagnostic: &dyn Diagnostic, parent: Option<&MaskedSource>) -> Self {
        let own = diagnostic.source_code().and_then(MaskedSource::read);
        let source = own.as_ref().or(parent);
        let labels = diagnostic
            .labels()
            .into_iter()
            .flatten()
            .map(|label| {
                let span = match source {
                    Some(source) => source.span(label.inner()),
                    None => *label.inner(),
                };
                let text = label.label().map(|text| mask(text).into_owned());
                if label.primary() {
                    LabeledSpan::new_primary_with_span(text, span)
                } else {
                    LabeledSpan::new_with_span(text, span)
                }
            })
            .collect();
        let related = diagnostic
            .related()
            .into_iter()
            .flatten()
            .map(|related| Self::of_diagnostic(related, source))
            .collect();
        let (cause, cause_is_diagnostic) = match diagnostic.diagnostic_source() {
            Some(cause) => (Some(Self::of_diagnostic(cause, source)), true),
            None => (diagnostic.source().map(Self::of_error), false),
        };
        Self {
            message: masked(diagnostic),
            code: diagnostic.code().map(|code| masked(&code)),
            severity: diagnostic.severity(),
            help: diagnostic.help().map(|help| masked(&help)),
            url: diagnostic.url().map(|url| masked(&url)),
            source_code: own.map(|source| source.code),
            labels,
            related,
            cause: cause.map(Box::new),
            cause_is_diagnostic,
        }
    }

    /// A cause that is only an error: its message and its own causes.
    fn of_error(error: &(dyn std::error::Error + 'static)) -> Self {
        Self {
            message: masked(error),
            code: None,
            severity: None,
            help: None,
            url: None,
            source_code: None,
            labels: Vec::new(),
            related: Vec::new(),
            cause: error.source().map(|cause| Box::new(Self::of_error(cause))),
            cause_is_diagnostic: false,
        }
    }
}

fn masked(text: &dyn fmt::Display) -> String {
    mask(&text.to_string()).into_owned()
}

impl fmt::Debug for Masked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Masked")
            .field("message", &self.message)
            .field("code", &self.code)
            .field("related", &self.related)
            .field("cause", &self.cause)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for Masked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Masked {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.cause {
            Some(cause) if !self.cause_is_diagnostic => Some(&**cause),
            _ => None,
        }
    }
}

impl Diagnostic for Masked {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.code
            .as_ref()
            .map(|code| Box::new(code) as Box<dyn fmt::Display>)
    }

    fn severity(&self) -> Option<Severity> {
        self.severity
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|help| Box::new(help) as Box<dyn fmt::Display>)
    }

    fn url<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.url
            .as_ref()
            .map(|url| Box::new(url) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.source_code.as_deref()
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        if self.labels.is_empty() {
            return None;
        }
        Some(Box::new(self.labels.iter().cloned()))
    }

    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn Diagnostic> + 'a>> {
        if self.related.is_empty() {
            return None;
        }
        Some(Box::new(
            self.related
                .iter()
                .map(|related| related as &dyn Diagnostic),
        ))
    }

    fn diagnostic_source(&self) -> Option<&dyn Diagnostic> {
        match &self.cause {
            Some(cause) if self.cause_is_diagnostic => Some(&**cause),
            _ => None,
        }
    }
}

/// A diagnostic's source code with its secrets masked, and where they were.
struct MaskedSource {
    /// Named as the original was (an unnamed source is drawn without a name).
    code: Box<dyn SourceCode>,
    /// The byte ranges of the original text that were secrets.
    secrets: Vec<Range<usize>>,
}

impl MaskedSource {
    /// The whole text of `source`, masked; `None` when it cannot be read.
    fn read(source: &dyn SourceCode) -> Option<Self> {
        // A span at the start with unlimited lines after it: the whole text.
        let contents = source
            .read_span(&SourceSpan::from(0..0), 0, usize::MAX)
            .ok()?;
        let text = String::from_utf8_lossy(contents.data()).into_owned();
        let secrets = secret_ranges(&text);
        let mut masked = String::with_capacity(text.len());
        let mut at = 0;
        for secret in &secrets {
            masked.push_str(&text[at..secret.start]);
            masked.push_str(MASK);
            at = secret.end;
        }
        masked.push_str(&text[at..]);
        let code: Box<dyn SourceCode> = match contents.name() {
            Some(name) => {
                let mut named = NamedSource::new(name, masked);
                if let Some(language) = contents.language() {
                    named = named.with_language(language);
                }
                Box::new(named)
            }
            None => Box::new(masked),
        };
        Some(Self { code, secrets })
    }

    /// `span` of the original text, in the masked text: a span that starts or ends inside a
    /// secret starts or ends with its mask.
    fn span(&self, span: &SourceSpan) -> SourceSpan {
        let start = self.offset(span.offset(), false);
        let end = if span.is_empty() {
            start
        } else {
            self.offset(span.offset() + span.len(), true)
        };
        (start..end.max(start)).into()
    }

    fn offset(&self, offset: usize, is_end: bool) -> usize {
        let mut moved = offset;
        for secret in &self.secrets {
            if offset >= secret.end {
                moved = moved + MASK.len() - secret.len();
            } else if offset > secret.start {
                let start = moved - (offset - secret.start);
                return if is_end { start + MASK.len() } else { start };
            } else {
                break;
            }
        }
        moved
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, miette::Diagnostic)]
    #[diagnostic(code(dp::example), help("do not print {token}"))]
    struct Leaky {
        token: String,
        #[source_code]
        src: NamedSource<String>,
        #[label("here: {token}")]
        at: SourceSpan,
        #[related]
        related: Vec<Leaky>,
    }

    impl fmt::Display for Leaky {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "the token is {}", self.token)
        }
    }

    impl std::error::Error for Leaky {}

    #[test]
    fn a_secret_is_masked_before_the_layout_at_any_width() {
        let token = "masked-rs-aaaa bbbb cccc dddd eeee ffff gggg hhhh iiii jjjj kkkk llll mmmm";
        dp_engine::report::register_secret(token);
        let text = format!("one {token} two\nafter {token}\nthe label's line\n");
        let label = text.find("the label's line").unwrap();
        let leaky = Leaky {
            token: token.into(),
            src: NamedSource::new("models/x.sql", text.clone()),
            at: (label..label + "the label's".len()).into(),
            related: vec![Leaky {
                token: token.into(),
                src: NamedSource::new("models/y.sql", text),
                at: (0..3).into(),
                related: Vec::new(),
            }],
        };
        for width in [20, 33, 40, 57, 80] {
            let handler = miette::GraphicalReportHandler::new_themed(
                miette::GraphicalTheme::unicode_nocolor(),
            )
            .with_width(width);
            let mut drawn = String::new();
            handler
                .render_report(&mut drawn, &Masked::new(&leaky))
                .unwrap();
            for word in token.split(' ') {
                assert!(!drawn.contains(word), "{word} at width {width}:\n{drawn}");
            }
            assert!(drawn.contains("the token is"), "{drawn}");
            assert!(drawn.contains("after ****"), "{drawn}");
            // The label still points at its words, after the masks moved them.
            assert!(drawn.contains("the label's line"), "{drawn}");
            assert!(drawn.contains("here: ****"), "{drawn}");
        }
    }

    #[derive(Debug, miette::Diagnostic)]
    #[diagnostic(code(dp::outer), url("https://example.com/outer"))]
    struct Outer {
        #[source_code]
        src: String,
        #[label("an unnamed source")]
        at: SourceSpan,
        #[diagnostic_source]
        inner: Leaky,
    }

    /// A diagnostic whose causes are plain errors.
    #[derive(Debug, miette::Diagnostic)]
    #[diagnostic(code(dp::plain))]
    struct Plain(std::io::Error);

    impl fmt::Display for Plain {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("plain")
        }
    }

    impl std::error::Error for Plain {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("outer")
        }
    }

    impl std::error::Error for Outer {}

    #[test]
    fn without_a_secret_the_copy_is_drawn_as_the_original() {
        let text = "select 1\nfrom nothing\n".to_string();
        let leaky = |related| Leaky {
            token: "no secret here".into(),
            src: NamedSource::new("models/x.sql", text.clone()).with_language("sql"),
            at: (9..13).into(),
            related,
        };
        let outer = Outer {
            src: text.clone(),
            at: (0..6).into(),
            inner: leaky(vec![leaky(Vec::new())]),
        };
        let plain = Plain(std::io::Error::other(std::io::Error::other("deepest")));
        let draw = |diagnostic: &dyn Diagnostic| {
            let mut drawn = String::new();
            miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
                .with_width(60)
                .render_report(&mut drawn, diagnostic)
                .unwrap();
            drawn
        };
        for diagnostic in [&outer as &dyn Diagnostic, &outer.inner, &plain] {
            assert_eq!(draw(&Masked::new(diagnostic)), draw(diagnostic));
        }
        assert!(draw(&outer).contains("no secret here"));
        assert!(draw(&plain).contains("deepest"));
    }

    #[test]
    fn a_span_moves_with_the_masks_before_it() {
        let source = MaskedSource {
            code: Box::new(String::new()),
            secrets: vec![2..12, 20..22],
        };
        let span = |range: Range<usize>| {
            let span = source.span(&range.into());
            span.offset()..span.offset() + span.len()
        };
        assert_eq!(span(0..2), 0..2);
        assert_eq!(span(12..15), 6..9);
        assert_eq!(span(5..14), 2..8);
        assert_eq!(span(22..23), 18..19);
        assert_eq!(span(3..3), 2..2);
    }
}
