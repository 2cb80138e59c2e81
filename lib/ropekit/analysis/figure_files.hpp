#pragma once
// The SVG figures an analysis tool writes beside its HDF5 output (--plot PREFIX). Every path is
// checked before anything is written, so a figure that may not be replaced stops the run before
// the HDF5 output exists; then each figure is written atomically like any output.
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
void write_figures(const std::vector<FigureFile>& figures, const RunContext& context,
                   const std::vector<std::string>& inputs);

}  // namespace ropekit
