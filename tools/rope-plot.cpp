// rope-plot: any 1-D, 2-D (or sliced 3-D) dataset of an HDF5 output as an SVG figure.
#include "ropekit/cli/cli.hpp"
#include "ropekit/core/error.hpp"
#include "ropekit/core/output_path.hpp"
#include "ropekit/plot/plot_dataset.hpp"

using namespace ropekit;

int main(int argc, char** argv) {
    Tool tool("rope-plot",
              "Draw one dataset of an HDF5 file as an SVG figure: a 1-D dataset as a line, a 2-D "
              "dataset as a heatmap with a viridis colour bar. Axis names come from the dataset's "
              "dimension labels, units from its 'units' attribute, and x values / tick labels "
              "from a coordinate dataset named like the axis when the file has one (e.g. "
              "'offset' beside 'activation'). A frequency axis goes on y with index 0 (the "
              "highest frequency) at the top, as in the paper's Figures 3 and 4.");
    std::string input, stdin_dataset, kind = "auto", title;
    int index = -1;
    bool transpose = false, log = false;
    tool.app().add_option(
        "input", input,
        "FILE[:DATASET]; FILE '-' reads stdin. Without DATASET the file must hold "
        "exactly one plottable dataset (coordinates do not count)");
    // "-:DATASET" looks like a short option "-:" to CLI11, so it is one (hidden).
    tool.app().add_option("-:", stdin_dataset, "DATASET of the file on stdin")->group("");
    tool.single_threaded("drawing one figure takes milliseconds");
    tool.reads_hdf5();
    tool.with_output(false);  // required, checked in the body: CLI11 2.1 reports a missing
                              // required option before an unknown one
    tool.app()
        .add_option("--kind", kind,
                    "auto (1-D: lines, 2-D: heatmap), heatmap or lines; "
                    "lines on a 2-D dataset draws one line per row")
        ->capture_default_str();
    tool.app().add_option("--title", title, "Figure title (default: 'DATASET (FILE)')");
    tool.app()
        .add_option("--index", index,
                    "For a 3-D dataset: plot the 2-D slice at this index of axis 0 "
                    "(e.g. the layer of q_norms [layer, head, freq])")
        ->check(CLI::NonNegativeNumber);
    tool.app().add_flag("--transpose", transpose, "Heatmap: swap the x and y axes");
    tool.app().add_flag("--log", log,
                        "Heatmap: logarithmic colour scale (chunk norms span decades); "
                        "lines: logarithmic x axis");
    tool.examples(
        "  rope-plot norms.h5:layer_q_norms -o fig3.svg          # Figure 3: layers x frequencies\n"
        "  rope-plot norms.h5:q_norms --index 0 -o fig4.svg      # Figure 4: heads of layer 0\n"
        "  freq-norms dump.h5 -o - | rope-plot -:layer_k_norms --log -o - > keys.svg\n"
        "  rsvg-convert fig3.svg -o fig3.png                     # a PNG, if you need one\n");
    return tool.run(argc, argv, [&] {
        if (!stdin_dataset.empty()) {
            if (!input.empty()) throw usage_error("give one input: FILE[:DATASET] or -:DATASET");
            input = "-:" + stdin_dataset;
        }
        if (input.empty()) throw usage_error("input is required: FILE[:DATASET] (see --help)");
        auto [file, dataset] = split_file_dataset(input);
        DatasetPlotOptions options;
        options.kind = parse_plot_kind(kind);
        options.title = title;
        if (index >= 0) options.index = static_cast<std::size_t>(index);
        options.transpose = transpose;
        options.log = log;
        check_output_path(tool.output(), tool.force(), {file});
        H5Input in = H5Input::open(file);
        if (dataset.empty()) dataset = default_plot_dataset(in);
        if (!in.has(dataset)) throw data_error(in.name(), dataset, "no such dataset");
        write_text_output(tool.output(), plot_dataset(in, dataset, options), tool.force(), {file});
        tool.note("wrote {} ({} from {})", tool.output(), dataset, in.name());
    });
}
