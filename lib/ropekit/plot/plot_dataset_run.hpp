#pragma once
// rope-plot as one call: the dataset its command line names (PlotDatasetCommand) is drawn
// (plot_dataset.hpp) and written as SVG.
#include <string>

#include "ropekit/core/run_context.hpp"
#include "ropekit/plot/plot_dataset.hpp"

namespace ropekit {

struct PlotDatasetCommand {
    std::string input;           // FILE[:DATASET]
    std::string stdin_dataset;   // "-:DATASET": the dataset of the file on stdin
    std::string kind = "auto";   // parse_plot_kind
    int index = -1;              // 3-D datasets: the axis-0 slice; -1 = none
    DatasetPlotOptions options;  // title, transpose, log; kind and index come from the above
};

void run_plot_dataset(const PlotDatasetCommand& command, const RunContext& context);

}  // namespace ropekit
