"""Hostile HDF5 stays inside its file (issue 18). h5py builds dumps that reach outside
themselves in every way HDF5 allows: a dataset whose bytes live in another file (external
raw-data storage, e.g. /etc/passwd), an external link, a virtual dataset whose source is in
another file, and a filter that exists only as a plugin loaded from HDF5_PLUGIN_PATH (a plugin
compiled here, which leaves a marker file when libhdf5 loads it). By default freq-norms and
find-positional-heads refuse each one with exit 1 and one line naming the file, the dataset and
the mechanism, read nothing outside and load no plugin; with --allow-external they read it and
their results equal numpy's on the same numbers."""
import os
import subprocess
import sys
import textwrap

import h5py
import numpy as np

from ropekit_test import TempDirTest, run, tool_path, tree_state

Q = "blocks.0.attn.hook_q"
K = "blocks.0.attn.hook_k"
SHAPE = (1, 16, 2, 8)  # batch, pos, head, dim

PLUGIN_SOURCE = r"""
#include <stdio.h>
#include <stdlib.h>
#include <H5PLextern.h>

/* An identity filter (ID 40000) that records every load of this plugin in a marker file. */
static size_t identity(unsigned flags, size_t n, const unsigned v[], size_t bytes, size_t *size,
                       void **buffer) {
    (void)flags; (void)n; (void)v; (void)size; (void)buffer;
    return bytes;
}
static const H5Z_class2_t identity_class = {H5Z_CLASS_T_VERS, 40000, 1, 1, "ropekit-test-identity",
                                            NULL, NULL, identity};
H5PL_type_t H5PLget_plugin_type(void) { return H5PL_TYPE_FILTER; }
const void *H5PLget_plugin_info(void) {
    const char *marker = getenv("ROPEKIT_PLUGIN_MARKER");
    if (marker) { FILE *f = fopen(marker, "a"); if (f) { fputs("loaded\n", f); fclose(f); } }
    return &identity_class;
}
"""


def values(seed):
    return np.random.default_rng(seed).standard_normal(SHAPE).astype(np.float32)


def chunk_norms(x):
    """freq-norms' q_norms for one layer: mean over batch and positions of each chunk's norm
    (half layout: dims k and k + d/2)."""
    x = x.astype(np.float64)
    half = x.shape[-1] // 2
    norms = np.sqrt(x[..., :half] ** 2 + x[..., half:] ** 2)
    return norms.mean(axis=(0, 1))  # [head, freq]


class HostileHdf5(TempDirTest):
    def dump(self, name, write_q):
        """A one-layer dump whose keys are ordinary and whose queries write_q(f) stores."""
        path = self.path(name)
        with h5py.File(path, "w") as f:
            write_q(f)
            f[K] = values(2)
            f.attrs["rope_theta"] = 10000.0
        return path

    def raw_file(self, name, array):
        path = self.path(name)
        array.tofile(path)
        return path

    def external_storage(self, target=None):
        target = target or self.raw_file("q.raw", values(1))
        return self.dump("external.h5", lambda f: f.create_dataset(
            Q, shape=SHAPE, dtype="<f4", external=[(target, 0, 4 * int(np.prod(SHAPE)))]))

    def external_link(self):
        other = self.path("other.h5")
        with h5py.File(other, "w") as f:
            f["q"] = values(1)
        return self.dump("linked.h5", lambda f: f.__setitem__(Q, h5py.ExternalLink(other, "/q")))

    def virtual_dataset(self):
        source = self.path("source.h5")
        with h5py.File(source, "w") as f:
            f["q"] = values(1)
        layout = h5py.VirtualLayout(shape=SHAPE, dtype="f4")
        layout[...] = h5py.VirtualSource(source, "q", shape=SHAPE)
        return self.dump("virtual.h5", lambda f: f.create_virtual_dataset(Q, layout))

    def plugin_filtered(self):
        """A dump whose queries go through filter 40000, which only the plugin provides."""
        plugins = self.path("plugins")
        os.makedirs(plugins)
        source = self.path("identity.c")
        with open(source, "w") as f:
            f.write(PLUGIN_SOURCE)
        include = [f"-I{d}" for d in ("/usr/include/hdf5/serial",) if os.path.isdir(d)]
        subprocess.run([os.environ.get("CC", "cc"), "-shared", "-fPIC", *include, source, "-o",
                        os.path.join(plugins, "libropekit_identity.so")], check=True)
        path = self.path("filtered.h5")
        script = textwrap.dedent(f"""
            import h5py, numpy as np
            with h5py.File({path!r}, "w") as f:
                f.create_dataset({Q!r}, data=np.fromfile({self.raw_file("q.raw", values(1))!r},
                                 dtype="<f4").reshape({SHAPE}), chunks={SHAPE}, compression=40000)
                f[{K!r}] = np.fromfile({self.raw_file("k.raw", values(2))!r},
                                       dtype="<f4").reshape({SHAPE})
                f.attrs["rope_theta"] = 10000.0
        """)
        env = dict(os.environ, HDF5_PLUGIN_PATH=plugins)
        subprocess.run([sys.executable, "-c", script], check=True, env=env)
        self.plugin_env = dict(env, ROPEKIT_PLUGIN_MARKER=self.path("plugin-loaded"))
        return path

    def run_tool(self, tool, dump, *extra, env=None):
        args = {"freq-norms": [dump, "--tensor", "q", "-o", self.path(f"{tool}.h5")],
                "find-positional-heads": [dump, "--from", "qk", "-o", self.path(f"{tool}.h5")]}
        cmd = [tool_path(tool), "-q", *args[tool], *extra]
        return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)

    def check_refused(self, dump, mechanism, env=None):
        inputs = sorted(os.listdir(self.tmp))
        states = {name: tree_state(self.path(name)) for name in inputs}
        for tool in ("freq-norms", "find-positional-heads"):
            with self.subTest(tool=tool, mechanism=mechanism):
                r = self.run_tool(tool, dump, env=env)
                self.assertOneLineError(r, 1, f"{tool}: {dump}: {Q}: ", mechanism,
                                        "--allow-external")
                self.assertEqual(sorted(os.listdir(self.tmp)), inputs, "no output written")
        for name in inputs:
            self.assertEqual(tree_state(self.path(name)), states[name], f"{name} was modified")

    def check_allowed(self, dump, env=None):
        """With --allow-external both tools read the queries from outside, as numpy does."""
        for tool in ("freq-norms", "find-positional-heads"):
            with self.subTest(tool=tool, allowed=True):
                r = self.run_tool(tool, dump, "--allow-external", env=env)
                self.assertEqual(r.returncode, 0, r.stderr)
        with h5py.File(self.path("freq-norms.h5"), "r") as f:
            np.testing.assert_allclose(f["q_norms"][0], chunk_norms(values(1)), rtol=1e-6)
        with h5py.File(self.path("find-positional-heads.h5"), "r") as f:
            self.assertTrue(np.isfinite(f["mass"][()]).all())

    def test_external_raw_storage_is_refused(self):
        self.check_refused(self.external_storage(), "another file ('" + self.path("q.raw"))
        self.check_allowed(self.path("external.h5"))

    def test_external_storage_pointing_at_etc_passwd_is_refused(self):
        # The reproducer: without the check, freq-norms read /etc/passwd and exited 0.
        dump = self.external_storage("/etc/passwd")
        self.check_refused(dump, "external raw-data storage")

    def test_external_link_is_refused(self):
        self.check_refused(self.external_link(), "external link to '" + self.path("other.h5"))
        self.check_allowed(self.path("linked.h5"))

    def test_virtual_dataset_with_a_source_in_another_file_is_refused(self):
        self.check_refused(self.virtual_dataset(), "virtual dataset")
        self.check_allowed(self.path("virtual.h5"))

    def test_virtual_dataset_inside_its_own_file_is_fine(self):
        path = self.path("self-virtual.h5")
        with h5py.File(path, "w") as f:
            f["source"] = values(1)
            layout = h5py.VirtualLayout(shape=SHAPE, dtype="f4")
            layout[...] = h5py.VirtualSource(".", "source", shape=SHAPE)
            f.create_virtual_dataset(Q, layout)
            f[K] = values(2)
            f.attrs["rope_theta"] = 10000.0
        r = self.run_tool("freq-norms", path)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_filter_plugin_is_neither_loaded_nor_used(self):
        dump = self.plugin_filtered()
        marker = self.plugin_env["ROPEKIT_PLUGIN_MARKER"]
        self.check_refused(dump, "filter 40000", env=self.plugin_env)
        self.assertFalse(os.path.exists(marker), "the plugin's code ran")
        self.check_allowed(dump, env=self.plugin_env)
        self.assertTrue(os.path.exists(marker), "--allow-external loads the plugin")

    def test_built_in_filters_stay_allowed(self):
        path = self.path("gzip.h5")
        with h5py.File(path, "w") as f:
            f.create_dataset(Q, data=values(1), compression="gzip", shuffle=True,
                             fletcher32=True)
            f[K] = values(2)
        r = self.run_tool("freq-norms", path)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_every_tool_that_reads_hdf5_offers_allow_external(self):
        for tool in ("freq-norms", "find-positional-heads", "rope-plot", "rope-decay",
                     "construct-key", "prope-convert", "rope-dump"):
            with self.subTest(tool=tool):
                self.assertIn("--allow-external", run(tool, "--help").stdout)


if __name__ == "__main__":
    import unittest
    unittest.main()
