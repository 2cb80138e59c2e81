#include "ropekit/analysis/figure_files.hpp"

#include "ropekit/core/output_path.hpp"

namespace ropekit {

void check_figure_paths(const std::vector<FigureFile>& figures, const RunContext& context,
                        const std::vector<std::string>& inputs) {
    for (const FigureFile& figure : figures) check_output_path(figure.path, context.force, inputs);
}

void write_figures(const std::vector<FigureFile>& figures, const RunContext& context,
                   const std::vector<std::string>& inputs) {
    for (const FigureFile& figure : figures) {
        write_text_output(figure.path, render_heatmap(figure.heatmap), context.force, inputs);
    }
}

}  // namespace ropekit
