//! Writing a run's TensorBoard event file while it trains (`[log] tensorboard` in a spec): a
//! [`MetricsSink`] beside the store's, making the same directory, tags and hyperparameters as
//! `rmlab export tensorboard` makes from the store afterwards.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use rusqlite::types::Value as Sql;

use super::event_file::{self, EventFile};
use super::proto::Status;
use super::run_dir::{run_path, session_start_info, tag};
use crate::data::Split;
use crate::error::{Error, Result};
use crate::eval::{MetricsSink, Outcome, RewardRow};
use crate::experiment::config::RunConfig;

/// Event files this process has opened: part of each name, so two never share one.
static OPENED: AtomicUsize = AtomicUsize::new(0);

/// The event file of one training run. Each evaluation is written and flushed as it comes, so
/// TensorBoard shows the run while it trains.
#[derive(Debug)]
pub struct TrainingEvents {
    file: EventFile,
    last_step: usize,
}

impl TrainingEvents {
    /// Opens the run's file in `root/<experiment>/<swept values>/` and writes its
    /// hyperparameters: every key of `config` as the store keeps it, `swept` naming the swept
    /// ones (the seed among them).
    pub fn start(
        root: &Path,
        experiment: &str,
        config: &RunConfig,
        swept: &[String],
    ) -> Result<TrainingEvents> {
        let params: BTreeMap<String, Sql> = crate::store::flatten_config(config).into_iter().collect();
        let swept: BTreeMap<String, Sql> =
            params.iter().filter(|(k, _)| swept.contains(k)).map(|(k, v)| (k.clone(), v.clone())).collect();
        let dir = root.join(run_path(experiment, &swept));
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let now = event_file::now();
        let host = crate::provenance::host_name()
            .map_or_else(|| "localhost".into(), |h| super::run_dir::safe_name(&h));
        let n = OPENED.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!(
            "events.out.tfevents.{:010}.{host}.{}.{n}.rmlab",
            now as u64,
            std::process::id()
        ));
        let mut file = EventFile::create(&path, now)?;
        file.write(&event_file::session_start(now, session_start_info(experiment, &params, &swept, now)))?;
        file.flush()?;
        Ok(TrainingEvents { file, last_step: 0 })
    }

    /// Writes how the run ended (the hparams plugin's session end: finished is success,
    /// diverged and failed are failures) and closes the file.
    pub fn finish(mut self, outcome: &Result<Outcome>) -> Result<()> {
        let status = match outcome {
            Ok(Outcome::Finished) => Status::Success,
            Ok(Outcome::Diverged { .. }) | Err(_) => Status::Failure,
        };
        self.file.write(&event_file::session_end(event_file::now(), self.last_step as i64, status))?;
        self.file.close()
    }
}

impl MetricsSink for TrainingEvents {
    fn record(&mut self, step: usize, split: Split, values: &[(&'static str, f64)]) -> Result<()> {
        let scalars = values.iter().map(|&(name, v)| (tag(split.as_str(), name), v as f32));
        self.file.write(&event_file::scalars(event_file::now(), step as i64, scalars))?;
        self.last_step = self.last_step.max(step);
        self.file.flush()
    }

    fn record_rewards(&mut self, _rows: &[RewardRow]) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::tensorboard::proto::{HParamsData, HParamsPluginData, Kind, ValueKind, What};
    use prost::Message;

    /// The file a sink writes holds, in order, the version, the hyperparameters, each record's
    /// scalars at its step, and the end.
    #[test]
    fn a_training_run_writes_its_scalars_as_they_come() {
        let dir = tempfile::tempdir().unwrap();
        let config = RunConfig::default();
        let mut sink = TrainingEvents::start(dir.path(), "exp", &config, &["seed".into()]).unwrap();
        sink.record(0, Split::Train, &[("loss_total", 0.5), ("accuracy", 0.25)]).unwrap();
        sink.record(10, Split::Val, &[("accuracy", f64::NAN)]).unwrap();
        let path = sink.file.path().to_path_buf();
        assert!(path.starts_with(dir.path().join(format!("exp/seed={}", config.seed))));
        // Readable before the run ends.
        assert_eq!(event_file::read_events(&std::fs::read(&path).unwrap()).unwrap().len(), 4);
        sink.finish(&Ok(Outcome::Finished)).unwrap();
        let events = event_file::read_events(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(events.len(), 5);
        let summary = |i: usize| match &events[i].what {
            Some(What::Summary(s)) => s.clone(),
            other => panic!("event {i} is {other:?}"),
        };
        let hparams = |i: usize| {
            let s = summary(i);
            let v = &s.value[0];
            HParamsPluginData::decode(
                v.metadata.as_ref().unwrap().plugin_data.as_ref().unwrap().content.as_slice(),
            )
            .unwrap()
            .data
            .unwrap()
        };
        match hparams(1) {
            HParamsData::SessionStartInfo(s) => {
                assert_eq!(s.hparams["train.lr"].kind, Some(Kind::NumberValue(config.train.lr)));
                assert_eq!(s.hparams["seed"].kind, Some(Kind::NumberValue(config.seed as f64)));
            }
            other => panic!("{other:?}"),
        }
        let tags: Vec<(String, Option<ValueKind>)> =
            summary(2).value.into_iter().map(|v| (v.tag, v.value)).collect();
        assert_eq!(
            tags,
            vec![
                ("train/loss_total".into(), Some(ValueKind::SimpleValue(0.5))),
                ("train/accuracy".into(), Some(ValueKind::SimpleValue(0.25)))
            ]
        );
        assert_eq!(events[3].step, 10);
        assert!(matches!(summary(3).value[0].value, Some(ValueKind::SimpleValue(v)) if v.is_nan()));
        match hparams(4) {
            HParamsData::SessionEndInfo(e) => assert_eq!(e.status, Status::Success as i32),
            other => panic!("{other:?}"),
        }
        assert_eq!(events[4].step, 10);
    }
}
