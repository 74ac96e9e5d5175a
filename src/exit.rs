//! What the process exits with, decided here and nowhere else. Commands
//! return an [`Exit`]; an error escaping a command is [`Exit::Error`].

use splitbrain_runner::campaign::CampaignRow;
use splitbrain_runner::report::Status;
use splitbrain_runner::RunOutcome;
use std::process::ExitCode;

/// The process's exit status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// 0: done; the history is valid; the run or campaign passed.
    Success,
    /// 1: done, and the answer is no: anomalies found, a test did not pass,
    /// an environment not ready.
    Failed,
    /// 2: could not be done: bad input or usage, a broken environment, a
    /// run that ended in an error, or whose outcome is ERROR (it did not
    /// test what it planned) or UNKNOWN (no verdict on loss can be given).
    Error,
    /// 130: stopped by Ctrl-C before it was done (the shell's convention).
    Interrupted,
}

impl Exit {
    /// [`Exit::Success`] when `ok`, else [`Exit::Failed`].
    pub fn passed_if(ok: bool) -> Exit {
        if ok {
            Exit::Success
        } else {
            Exit::Failed
        }
    }

    /// An outcome's status: PASS 0, FAIL 1, ERROR and UNKNOWN 2.
    pub fn of_status(status: Status) -> Exit {
        match status {
            Status::Pass => Exit::Success,
            Status::Fail => Exit::Failed,
            Status::Error | Status::Unknown => Exit::Error,
        }
    }

    /// One run: an error first, then its outcome.
    pub fn of_run(outcome: &RunOutcome) -> Exit {
        if outcome.error.is_some() {
            Exit::Error
        } else {
            Exit::of_status(outcome.status)
        }
    }

    /// A campaign: any test that could not run or complete makes it an
    /// error; otherwise it passes when every test passed.
    pub fn of_campaign(rows: &[CampaignRow]) -> Exit {
        if rows.iter().any(CampaignRow::is_error) {
            Exit::Error
        } else {
            Exit::passed_if(rows.iter().all(CampaignRow::passed))
        }
    }

    /// The status number.
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Failed => 1,
            Exit::Error => 2,
            Exit::Interrupted => 130,
        }
    }

    /// Ends the process now with this status, from where returning to
    /// `main` is not possible (the third Ctrl-C's handler).
    pub fn now(self) -> ! {
        std::process::exit(i32::from(self.code()))
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit.code())
    }
}
