#pragma once
// The SVG figures an analysis tool writes beside its HDF5 output (--plot PREFIX). The prefix's
// folder is checked before the work starts and every path before anything is written; the
// figures then join the run's OutputBatch, so the HDF5 output and the figures are committed
// together or not at all.
#include <string>
#include <vector>

#include "ropekit/core/run_context.hpp"
#include "ropekit/plot/svg_plot.hpp"

namespace ropekit {

struct FigureFile {
    std::string path;
    Heatmap heatmap;
};

// usage_error for the first path that is an input or exists without --force.
void check_figure_paths(const std::vector<FigureFile>& figures, const RunContext& context,
                        const std::vector<std::string>& inputs);
void add_figures(OutputBatch& batch, const std::vector<FigureFile>& figures,
                 const RunContext& context, const std::vector<std::string>& inputs);
// data_error unless the folder figures named PREFIX-... go to exists and is writable.
void check_figure_prefix(const std::string& prefix);

}  // namespace ropekit
