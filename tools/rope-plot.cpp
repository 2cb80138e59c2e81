// rope-plot: any 1-D, 2-D (or sliced 3-D) dataset of an HDF5 output as an SVG figure.
#include "ropekit/cli/cli.hpp"
#include "ropekit/plot/plot_dataset_run.hpp"

using namespace ropekit;

namespace {

void add_options(Tool& tool, PlotDatasetCommand& c) {
    auto& app = tool.app();
    auto* input = app.add_option("INPUT", c.input,
                                 "FILE[:DATASET]; FILE '-' reads stdin. Without DATASET the file "
                                 "must hold exactly one plottable dataset (coordinates do not "
                                 "count)");
    // "-:DATASET" looks like a short option "-:" to CLI11, so it is one (hidden).
    auto* stdin_input =
        app.add_option("-:", c.stdin_dataset, "DATASET of the file on stdin")->group("");
    tool.require_one_of({input, stdin_input}, "INPUT (FILE[:DATASET] or -:DATASET)");
    tool.single_threaded("drawing one figure takes milliseconds");
    tool.with_output().writes_text();
    tool.reads_hdf5().reads_bf16_bits();
    app.add_option("--kind", c.kind,
                   "auto (1-D: lines, 2-D: heatmap), heatmap or lines; lines on a 2-D dataset "
                   "draws one line per row")
        ->capture_default_str();
    app.add_option("--title", c.options.title, "Figure title (default: 'DATASET (FILE)')");
    app.add_option("--index", c.index,
                   "For a 3-D dataset: plot the 2-D slice at this index of axis 0 (e.g. the layer "
                   "of q_norms [layer, head, freq])")
        ->check(CLI::NonNegativeNumber);
    app.add_flag("--transpose", c.options.transpose, "Heatmap: swap the x and y axes");
    app.add_flag("--from-zero", c.options.from_zero,
                 "Start the value scale at 0 (the y axis of a line plot, a heatmap's colours), "
                 "so that small differences are not magnified");
    app.add_flag("--log", c.options.log,
                 "Heatmap: logarithmic colour scale (chunk norms span decades); lines: "
                 "logarithmic x axis");
}

}  // namespace

int main(int argc, char** argv) {
    Tool tool("rope-plot",
              "Draw one dataset of an HDF5 file as an SVG figure: a 1-D dataset as a line, a 2-D "
              "dataset as a heatmap with a viridis colour bar. Axis names come from the dataset's "
              "dimension labels, units from its 'units' attribute, and x values / tick labels "
              "from a coordinate dataset named like the axis when the file has one (e.g. "
              "'offset' beside 'activation'). A frequency axis goes on y with index 0 (the "
              "highest frequency) at the top, as in the paper's Figures 3 and 4.");
    PlotDatasetCommand command;
    add_options(tool, command);
    tool.examples(
        "  rope-plot norms.h5:layer_q_norms -o fig3.svg          # Figure 3: layers x frequencies\n"
        "  rope-plot norms.h5:q_norms --index 0 -o fig4.svg      # Figure 4: heads of layer 0\n"
        "  freq-norms dump.h5 -o - | rope-plot -:layer_k_norms --log -o - > keys.svg\n"
        "  rsvg-convert fig3.svg -o fig3.png                     # a PNG, if you need one\n");
    return tool.run(argc, argv, [&] { run_plot_dataset(command, tool.context()); });
}
