// h5-echo (test helper, not a product tool): reads datasets and attributes through ropekit's
// HDF5 input and writes them back through its output, so tests can round-trip files with h5py,
// including through "-" pipes.
#include <CLI/CLI.hpp>

#include "ropekit/cli/cli.hpp"
#include "ropekit/hdf5/h5io.hpp"

using namespace ropekit;

int main(int argc, char** argv) {
    Tool tool("h5-echo", "Copy datasets and attributes through ropekit's HDF5 reader and writer.");
    tool.with_output();
    tool.reads_hdf5();
    std::string input, dtype = "f32";
    std::vector<std::string> datasets;
    tool.require(tool.app().add_option("INPUT", input, "Input file or -"));
    tool.app().add_option("datasets", datasets, "Datasets to copy (default: all)");
    tool.app().add_option("--dtype", dtype, "Stored type: f16, bf16, f32, f64");
    tool.examples("  h5-echo in.h5 -o - | h5ls -\n");
    return tool.run(argc, argv, [&] {
        const RunContext context = tool.context();
        const DType stored = parse_dtype(dtype, "--dtype");
        const H5Input in = H5Input::open(input);
        if (datasets.empty()) datasets = in.dataset_names();
        H5Output out = H5Output::create(context.output, context.write_options({input}));
        for (const auto& name : datasets) {
            if (stored == DType::f64) {
                out.write(name, in.read_double(name));
            } else {
                out.write(name, in.read_float(name), {}, "", stored);
            }
            for (const auto& attr : in.attr_names(name)) {
                if (attr != "dtype") out.set_attr(name, attr, *in.attr(name, attr));
            }
        }
        for (const auto& attr : in.attr_names("/")) {
            if (attr != "history") out.set_attr("/", attr, *in.attr("/", attr));
        }
        out.commit(context.tool, context.command_line, in.history());
    });
}
