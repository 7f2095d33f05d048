//! `tls-mailer man`: manual pages (troff) generated from the clap
//! definitions: the main page on stdout, or one page per command in a
//! directory (`tls-mailer.1`, `tls-mailer-send.1`, ...).

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use clap::{Args, CommandFactory};
use clap_mangen::Man;

use crate::exit::Failure;

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write tls-mailer.1 and a page per command (tls-mailer-send.1, ...)
    /// into this directory instead of printing the main page.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

pub fn run(args: &ManArgs) -> Result<(), Failure> {
    let command = crate::Cli::command();
    match &args.dir {
        None => {
            let mut page = Vec::new();
            render(&Man::new(command), &mut page)?;
            io::stdout()
                .write_all(&page)
                .map_err(|error| Failure::Output {
                    target: "stdout".into(),
                    error,
                })
        }
        Some(dir) => write_pages(command, dir),
    }
}

/// The main page and, for each command, `tls-mailer-COMMAND.1`.
fn write_pages(command: clap::Command, dir: &Path) -> Result<(), Failure> {
    fs::create_dir_all(dir).map_err(|error| cannot_write(dir, error))?;
    let command = command.disable_help_subcommand(true);
    let mut pages = vec![(format!("{}.1", command.get_name()), command.clone())];
    for sub in command.get_subcommands() {
        let name = format!("{}-{}", command.get_name(), sub.get_name());
        let page = sub
            .clone()
            .display_name(name.clone())
            .bin_name(format!("{} {}", command.get_name(), sub.get_name()))
            .version(env!("CARGO_PKG_VERSION"));
        pages.push((format!("{name}.1"), page));
    }
    for (file, page) in pages {
        let path = dir.join(file);
        let mut bytes = Vec::new();
        render(&Man::new(page), &mut bytes)?;
        fs::write(&path, bytes).map_err(|error| cannot_write(&path, error))?;
        println!("{}", path.display());
    }
    Ok(())
}

/// Renders into memory, which cannot fail but for the page itself.
fn render(man: &Man, out: &mut Vec<u8>) -> Result<(), Failure> {
    man.render(out).map_err(|error| Failure::Output {
        target: "the manual page".into(),
        error,
    })
}

fn cannot_write(path: &Path, error: io::Error) -> Failure {
    Failure::Output {
        target: path.display().to_string(),
        error,
    }
}
