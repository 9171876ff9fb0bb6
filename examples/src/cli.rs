//! Command-line flags for the example programs: `--name value` pairs,
//! strictly (unknown, repeated or valueless flags are errors), and a few
//! named switches that take no value (`--force`).

/// Any error, for the programs.
pub type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// The profile called `name` in configuration files and flags
/// (`fapi1-advanced`, `fapi2-security`, `fapi2-message-signing`).
pub fn profile_named(name: &str) -> Option<fapi_core::Profile> {
    use fapi_core::Profile;
    match name {
        "fapi1-advanced" => Some(Profile::Fapi1Advanced),
        "fapi2-security" => Some(Profile::Fapi2Security),
        "fapi2-message-signing" => Some(Profile::Fapi2MessageSigning),
        _ => None,
    }
}

/// Flags that may be given more than once.
const REPEATABLE: [&str; 2] = ["tpp", "account"];

/// Flags that take no value.
const SWITCHES: [&str; 2] = ["force", "self-signed-clients"];

/// Parsed `--name value` pairs; each name at most once unless listed as
/// repeatable.
#[derive(Debug)]
pub struct Flags(Vec<(String, String)>);

impl Flags {
    /// Parses `args` (after the command words).
    ///
    /// # Errors
    /// A positional argument, a flag without a value, or a repeat.
    pub fn parse(args: &[String]) -> Res<Self> {
        Self::parse_repeating(args, &[])
    }

    /// [`Flags::parse`] where the flags in `repeatable` may also be given
    /// more than once (one program's list, e.g. loadgen's `--discovery`).
    ///
    /// # Errors
    /// As [`Flags::parse`].
    pub fn parse_repeating(args: &[String], repeatable: &[&str]) -> Res<Self> {
        let mut out: Vec<(String, String)> = Vec::new();
        let mut it = args.iter();
        while let Some(name) = it.next() {
            let Some(name) = name.strip_prefix("--") else {
                return Err(format!("unexpected argument {name:?}").into());
            };
            let value = if SWITCHES.contains(&name) {
                "true".to_owned()
            } else {
                it.next()
                    .ok_or_else(|| format!("--{name} needs a value"))?
                    .clone()
            };
            let repeats = REPEATABLE.contains(&name) || repeatable.contains(&name);
            if !repeats && out.iter().any(|(n, _)| n == name) {
                return Err(format!("--{name} given twice").into());
            }
            out.push((name.to_owned(), value));
        }
        Ok(Self(out))
    }

    /// Whether the switch `--name` was given.
    pub fn switch(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// The value of `--name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a repeatable `--name`.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Refuses flags outside `allowed`.
    ///
    /// # Errors
    /// Names the first unknown flag.
    pub fn only(&self, allowed: &[&str]) -> Res<()> {
        match self.0.iter().find(|(n, _)| !allowed.contains(&n.as_str())) {
            Some((n, _)) => Err(format!("unknown flag --{n}").into()),
            None => Ok(()),
        }
    }

    /// `--name` parsed as `T`.
    ///
    /// # Errors
    /// The value does not parse.
    pub fn parsed<T: std::str::FromStr>(&self, name: &str) -> Res<Option<T>> {
        self.get(name)
            .map(|v| {
                v.parse()
                    .map_err(|_| format!("--{name}: {v:?} is not valid").into())
            })
            .transpose()
    }

    /// Only the named flags.
    pub fn subset(&self, names: &[&str]) -> Self {
        Self(
            self.0
                .iter()
                .filter(|(n, _)| names.contains(&n.as_str()))
                .cloned()
                .collect(),
        )
    }
}
