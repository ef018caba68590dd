"""ParCorAna's G2 correlation as an h5flow workflow (see g2.yaml and README.md).

- `DetectorEvents` (generator): detector frames, `update` events per chunk,
  and the pixel mask (1 = analyse this pixel).
- `G2Worker` (stage): owns one slice of the masked pixels; for its chunk it
  looks back over a rolling buffer of `times` events and sums, per delay, the
  products I(t-d) I(t), the earlier intensities I(t-d), the later ones I(t)
  and the pair counts. Chunks are independent, so any rank can run any chunk.
- `G2Viewer` (stage): the viewer. It runs in order on rank 0 (``in_order``),
  after each chunk's worker rows are committed, adds them to running sums and
  publishes G2 = <I(t-d) I(t)> / (IF IP), IF = <I(t-d)> and IP = <I(t)> per
  delay and pixel: one row per `update` events, written to the output as it
  goes (``publish``).
"""

import numpy as np
from h5flow.core import H5FlowGenerator, H5FlowStage


def worker_dtype(n_delays, n_pixels):
    return np.dtype([("sum_prod", "f8", (n_delays, n_pixels)), ("sum_if", "f8", (n_delays, n_pixels)),
                     ("sum_ip", "f8", (n_delays, n_pixels)), ("count", "i8", (n_delays,))])


class DetectorEvents(H5FlowGenerator):
    class_version = "1.0.0"

    def __init__(self, **params):
        super().__init__(**params)
        self.events = int(params.get("events", 200))
        self.update = int(params.get("update", 20))
        self.shape = tuple(params.get("shape", [8, 8]))
        self.seed = int(params.get("seed", 0))
        self.iteration = 0

    def __len__(self):
        return -(-self.events // self.update)

    def init(self):
        self.data_manager.create_dset(self.dset_name, dtype="f4", shape=self.shape)
        self.data_manager.create_dset("mask", dtype="u1", shape=self.shape)
        rng = np.random.default_rng([self.seed, 1 << 20])
        if len(self.data_manager.get_dset("mask")) == 0:
            sl = self.data_manager.reserve_data("mask", 1)
            self.data_manager.write_data("mask", sl, (rng.random(self.shape) > 0.2).astype("u1")[None])
        self.data_manager.set_attrs(self.dset_name, classname=self.classname, class_version=self.class_version,
                                    events=self.events, update=self.update, seed=self.seed)

    def next(self):
        start = self.iteration * self.update
        if start >= self.events:
            return H5FlowGenerator.EMPTY
        n = min(self.update, self.events - start)
        self.iteration += 1
        rng = np.random.default_rng([self.seed, self.iteration])
        t = np.arange(start, start + n).reshape(-1, 1, 1)
        rate = 5.0 * (1.0 + 0.5 * np.sin(2 * np.pi * t / 17.0 + np.arange(self.shape[1]) / 3.0))
        frames = rng.poisson(np.broadcast_to(rate, (n, *self.shape))).astype("f4")
        sl = self.data_manager.reserve_data(self.dset_name, n)
        self.data_manager.write_data(self.dset_name, sl, frames)
        return sl


class G2Worker(H5FlowStage):
    class_version = "1.0.0"

    def __init__(self, **params):
        super().__init__(**params)
        self.delays = [int(d) for d in params.get("delays", [1, 2, 4, 8])]
        self.times = int(params.get("times", 16))
        self.part, self.parts = int(params.get("part", 0)), int(params.get("parts", 1))
        self.output = params.get("output", f"g2/worker{self.part}")
        if max(self.delays) >= self.times:
            raise ValueError(f"delays must be below times={self.times} (the rolling buffer)")

    def init(self, source_name):
        mask = self.data_manager.get_dset("mask")[0].ravel().astype(bool)
        self.pixels = np.array_split(np.flatnonzero(mask), self.parts)[self.part]
        self.data_manager.create_dset(self.output, dtype=worker_dtype(len(self.delays), len(self.pixels)))
        self.data_manager.set_attrs(self.output, delays=self.delays, pixels=self.pixels, times=self.times)

    def run(self, source_name, source_slice, cache):
        lo = max(0, source_slice.start - (self.times - 1))  # the rolling buffer: up to times-1 earlier events
        frames = self.data_manager.get_dset(source_name)[lo:source_slice.stop]
        x = frames.reshape(len(frames), -1)[:, self.pixels].astype("f8")
        row = np.zeros(1, dtype=worker_dtype(len(self.delays), len(self.pixels)))
        now = x[source_slice.start - lo:]
        for i, d in enumerate(self.delays):
            first = source_slice.start - lo - d  # index in x of I(t-d) for the chunk's first t
            keep = slice(max(0, -first), len(now))
            past = x[first + keep.start: first + len(now)]
            row["sum_prod"][0, i] = (past * now[keep]).sum(axis=0)
            row["sum_if"][0, i] = past.sum(axis=0)
            row["sum_ip"][0, i] = now[keep].sum(axis=0)
            row["count"][0, i] = len(past)
        sl = self.data_manager.reserve_data(self.output, 1)
        self.data_manager.write_data(self.output, sl, row)


class G2Viewer(H5FlowStage):
    class_version = "2.0.0"
    in_order = True  # sees every earlier update's worker rows
    publish = True  # every update reaches the file as the run goes

    def __init__(self, **params):
        super().__init__(**params)
        self.workers = list(params.get("workers", ["g2/worker0"]))
        self.output = params.get("output", "g2")

    def init(self, source_name):
        attrs = [self.data_manager.get_attrs(w) for w in self.workers]
        self.delays = list(attrs[0]["delays"])
        self.n_pixels = sum(len(a["pixels"]) for a in attrs)
        for name in ("G2", "IF", "IP"):
            self.data_manager.create_dset(f"{self.output}/{name}", dtype="f8", shape=(len(self.delays), self.n_pixels))
        self.data_manager.set_attrs(self.output, delays=self.delays,
                                    pixels=np.concatenate([a["pixels"] for a in attrs]))
        self.seen = 0  # worker rows (updates) in the running sums
        self.sums = {f: np.zeros((len(self.delays), self.n_pixels)) for f in ("sum_prod", "sum_if", "sum_ip")}
        self.count = np.zeros(len(self.delays))

    def _add(self, rows):
        """Add worker rows (one array per worker, a row per update) to the running sums, one
        update at a time; returns G2, IF and IP after each."""
        out = {"G2": [], "IF": [], "IP": []}
        for k in range(len(rows[0])):
            for f in self.sums:
                self.sums[f] = self.sums[f] + np.concatenate([r[f][k] for r in rows], axis=-1)
            self.count = self.count + rows[0]["count"][k]
            count = self.count[:, None]
            with np.errstate(invalid="ignore", divide="ignore"):
                i_f, i_p = self.sums["sum_if"] / count, self.sums["sum_ip"] / count
                out["G2"].append((self.sums["sum_prod"] / count) / (i_f * i_p))
            out["IF"].append(i_f)
            out["IP"].append(i_p)
        return out

    def run(self, source_name, source_slice, cache):
        super().run(source_name, source_slice, cache)
        dsets = [self.data_manager.get_dset(w) for w in self.workers]
        published = len(self.data_manager.get_dset(f"{self.output}/G2"))
        if self.seen < published:  # resumed: catch up with what is already published
            self._add([d[self.seen:published] for d in dsets])
            self.seen = published
        end = min(len(d) for d in dsets)  # updates every worker has reported
        if end <= self.seen:
            return
        values = self._add([d[self.seen:end] for d in dsets])
        self.seen = end
        for name, rows in values.items():
            sl = self.data_manager.reserve_data(f"{self.output}/{name}", len(rows))
            self.data_manager.write_data(f"{self.output}/{name}", sl, np.array(rows))
