# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""The study of one task: data; the teachers (trained once, cached) and the student alone
per seed; as soon as a teacher is trained, its distilled students (per seed and method);
as soon as both exist, the student alone tested next to the teacher (the agreement of a
student that never saw it). Teachers are queued strongest (longest) first, then the
students alone, so that with ``--jobs 2`` one worker trains students while the other
trains the longest teacher. Finished runs are reused (same key); ``on_progress`` is
called after every run (partial outputs)."""
import os.path as osp
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterator, List, Optional, Sequence

from .data import prepare_data
from .executor import Executor, Job
from .ladder import LadderTask, Teacher
from .runs import RunResult, as_distiller_checkpoint, load_cached, run_key, store


@dataclass
class Settings:
    """How to run: output folder, the CPU settings (:meth:`~mmdist.utils.cpu_determinism.
    CpuPinning.key`, part of every run's key), seeds, ``--tiny``, ignore finished runs."""

    work_dir: str
    cpu: Dict
    seeds: Sequence[int] = (0, 1, 2)
    tiny: bool = False
    retrain: bool = False


@dataclass
class TaskRuns:
    """Everything one task's study produced so far."""

    task: LadderTask
    data_root: str
    data_fingerprint: str
    seeds: List[int]
    teachers: Dict[str, RunResult] = field(default_factory=dict)
    students: Dict[int, RunResult] = field(default_factory=dict)
    distilled: List[RunResult] = field(default_factory=list)

    def find(self, role: str, teacher: str, seed: int) -> Optional[RunResult]:
        for run in self.distilled:
            if (run.role, run.teacher, run.seed) == (role, teacher, seed):
                return run
        return None


def num_runs(task: LadderTask, seeds: Sequence[int]) -> int:
    """Training runs of a task's study (the progress counter's total)."""
    return len(task.teachers) + len(seeds) * (1 + len(task.teachers) * len(task.methods))


@dataclass(frozen=True)
class _Planned:
    """A run to train: what :class:`RunResult` records besides the run's output."""

    role: str
    teacher: Optional[str]
    seed: int
    key: str
    config: str
    work_dir: str

    @property
    def name(self) -> str:
        return f'{self.role} {self.teacher + " " if self.teacher else ""}seed {self.seed}'


class TaskStudy:
    """Runs one task's study with ``executor``; ``console`` prints progress."""

    def __init__(self, task: LadderTask, settings: Settings, executor: Executor, console,
                 on_progress: Callable[[TaskRuns], None] = lambda runs: None) -> None:
        self.task, self.settings, self.executor = task, settings, executor
        self.console, self.on_progress = console, on_progress
        self.root = osp.join(settings.work_dir, task.name)
        self.schedule = task.schedule_options(task.tiny_length) if settings.tiny else []

    # ----------------------------------------------------------------- planning
    def _plan(self, role: str, teacher: Optional[Teacher], seed: int, config: str,
              folder: str, extra: Sequence[str] = ()) -> Iterator[Job]:
        """The job training ``config``, unless the finished run is there (then recorded)."""
        teacher_key = '' if role in ('teacher', 'student') else self.runs.teachers[
            teacher.name].key
        seed_options = [f'randomness.seed={seed}']
        key = run_key(config, self.schedule + seed_options, self.runs.data_fingerprint, seed,
                      self.settings.cpu, teacher_key)
        planned = _Planned(role, None if teacher is None else teacher.name, seed, key, config,
                           osp.join(self.root, f'{folder}-{key}'))
        cached = None if self.settings.retrain else load_cached(planned.work_dir, key)
        if cached is not None:
            self.console.begin_stage(f'{planned.name}: finished earlier '
                                     f'({osp.relpath(planned.work_dir, self.root)})')
            yield from self._record(cached)
            return
        options = self.data_options + self.schedule + seed_options + list(extra)
        yield Job('train', (config, planned.work_dir, options), planned)

    def _teacher_options(self, teacher: Teacher) -> List[str]:
        return [f'model.teacher_cfg={self.task.config(teacher.config)}',
                f'model.teacher_ckpt={self.runs.teachers[teacher.name].checkpoint}']

    def _pairing_jobs(self) -> Iterator[Job]:
        """Tests of each student alone next to each trained teacher, not yet done or
        queued."""
        config = self.task.config(self.task.methods[-1].config)
        for student in self.runs.students.values():
            converted = osp.join(student.work_dir, 'as_distiller.pth')
            for name, teacher_run in self.runs.teachers.items():
                done = student.paired.get(name, {}).get('teacher_key') == teacher_run.key
                if done or (student.seed, name) in self._queued_pairs:
                    continue
                if not osp.isfile(converted):
                    as_distiller_checkpoint(student.checkpoint, converted)
                self._queued_pairs.add((student.seed, name))
                teacher = next(t for t in self.task.teachers if t.name == name)
                yield Job('test', (config, converted, osp.join(student.work_dir, 'paired', name),
                                   self.data_options + self._teacher_options(teacher)),
                          (student, name, teacher_run.key))

    def _distilled_jobs(self, teacher: Teacher) -> Iterator[Job]:
        """The students distilled from ``teacher`` (trained), per seed and method."""
        for seed in self.settings.seeds:
            for method in self.task.methods:
                yield from self._plan(method.name, teacher, seed,
                                      self.task.config(method.config),
                                      osp.join(method.name, teacher.name, f'seed{seed}'),
                                      self._teacher_options(teacher))

    # ----------------------------------------------------------------- results
    def _record(self, result: RunResult) -> Iterator[Job]:
        runs = self.runs
        if result.role == 'teacher':
            runs.teachers[result.teacher] = result
            yield from self._distilled_jobs(
                next(t for t in self.task.teachers if t.name == result.teacher))
            yield from self._pairing_jobs()
        elif result.role == 'student':
            runs.students[result.seed] = result
            yield from self._pairing_jobs()
        else:
            runs.distilled.append(result)
        self.on_progress(runs)

    def _on_done(self, job: Job, out: Dict) -> Iterator[Job]:
        if job.kind == 'test':  # the student alone next to a teacher
            student, teacher, teacher_key = job.tag
            student.paired[teacher] = dict(teacher_key=teacher_key, **out)
            store(student)
            self.console.detail(f'student seed {student.seed} next to {teacher}: agreement '
                                f'{100 * out["metrics"].get("faith/agreement", 0):.1f}%')
            self.on_progress(self.runs)
            return
        planned: _Planned = job.tag
        result = RunResult(role=planned.role, teacher=planned.teacher, seed=planned.seed,
                           key=planned.key, config=planned.config, work_dir=planned.work_dir,
                           **out)
        store(result)
        metric = result.metrics.get(self.task.metric, float('nan'))
        self.console.begin_stage(
            f'{planned.name}: {self.task.metric_label} {metric:.2f} (train '
            f'{result.train_seconds:.0f} s wall / {result.train_cpu_seconds:.0f} s CPU, '
            f'test {result.test_seconds:.0f} s)')
        yield from self._record(result)

    # ----------------------------------------------------------------- the study
    def run(self) -> TaskRuns:
        task, settings = self.task, self.settings
        spec = task.tiny_data if settings.tiny else task.data
        data_root = osp.join(self.root, 'data')
        self.console.info(f'{task.name}: data in {data_root}')
        self.runs = TaskRuns(task, data_root, prepare_data(task, data_root, spec),
                             list(settings.seeds))
        self.data_options = task.data_options(data_root)

        self._queued_pairs = set()
        jobs: List[Job] = []
        for teacher in reversed(task.teachers):
            jobs += self._plan('teacher', teacher, 0, task.config(teacher.config),
                               osp.join('teachers', teacher.name))
        for seed in settings.seeds:
            jobs += self._plan('student', None, seed, task.config(task.student),
                               osp.join('student', f'seed{seed}'))
        # Teachers to train, then students alone, then what finished teachers enabled.
        order = {'teacher': 0, 'student': 1}
        jobs.sort(key=lambda job: order.get(getattr(job.tag, 'role', None), 2))
        self.executor.run(jobs, self._on_done)
        return self.runs
