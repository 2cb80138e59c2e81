#pragma once
// Dependency-free SVG figures: heatmaps (Figures 3-5 of the paper) and line plots with shaded
// bands. Output is deterministic (same input, same bytes) and renders with rsvg-convert and
// every browser. Write the returned text with write_text_output (output_path.hpp).
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace ropekit {

struct Rgb {
    std::uint8_t r = 0, g = 0, b = 0;
    bool operator==(const Rgb& o) const { return r == o.r && g == o.g && b == o.b; }
};
std::string hex(Rgb c);  // "#440154"

// Viridis (perceptually uniform, colour-blind safe), t in [0, 1] (clamped), linearly
// interpolated between 9 anchors of matplotlib's table.
Rgb viridis(double t);

// A colour scale from data values to [0, 1]: linear, or logarithmic for data spanning orders of
// magnitude (values <= 0 then map to 0).
struct ColorScale {
    double min = 0, max = 1;
    bool log = false;
    double position(double value) const;  // 0 at min, 1 at max, clamped; NaN stays NaN
};

// "Nice" tick values (1, 2 or 5 times a power of ten) covering [lo, hi] with about `target`
// ticks, all inside [lo, hi].
std::vector<double> nice_ticks(double lo, double hi, std::size_t target = 6);
// Decades (and 2, 5 in between when the range spans less than three decades) inside [lo, hi],
// lo > 0.
std::vector<double> log_ticks(double lo, double hi);
// A tick label: as few digits as tell neighbours `step` apart; 1e-4 and 1e+06 style when tiny
// or huge.
std::string tick_label(double value, double step);

// Which of `count` equally spaced labels to draw so none overlap: every k-th index with k in
// 1, 2, 5, 10, 20, ... the smallest such that k * spacing_px >= widest_px (+ a small gap).
std::vector<std::size_t> thinned_label_indices(std::size_t count, double spacing_px,
                                               double widest_px);

struct Heatmap {
    std::size_t rows = 0, cols = 0;
    std::vector<double> values;  // row-major [rows x cols]; NaN cells are drawn grey
    std::string title;
    std::string x_label, y_label;  // axis titles (include units where they apply)
    // One label per column / row; empty = the 0-based index.
    std::vector<std::string> x_tick_labels, y_tick_labels;
    std::string color_label;  // what the colour means, e.g. "mean chunk 2-norm"
    std::string color_units;  // shown in brackets after color_label
    bool log_color = false;   // logarithmic colour scale
    bool row0_top = true;     // row 0 at the top (the paper's: high frequency at the top)
    double color_min = std::numeric_limits<double>::quiet_NaN();  // NaN = data minimum
    double color_max = std::numeric_limits<double>::quiet_NaN();  // NaN = data maximum
    double width = 760, height = 520;                             // whole figure, px
};

// The colour scale a heatmap uses: its limits, or the finite data range (positive data range
// for log). Throws usage_error if there is nothing finite to draw.
ColorScale heatmap_color_scale(const Heatmap& heatmap);
std::string render_heatmap(const Heatmap& heatmap);

struct Series {
    std::string name;
    std::vector<double> x, y;
    std::vector<double> band;  // optional half-width (e.g. stderr): shaded y - band .. y + band
};

struct LinePlot {
    std::vector<Series> series;  // non-finite points (and x <= 0 on a log axis) are skipped
    std::string title;
    std::string x_label, y_label;  // axis titles; units in x_units / y_units
    std::string x_units, y_units;
    bool log_x = false;
    bool y_from_zero = false;  // the y axis includes 0, so a flat curve looks flat
    double width = 760, height = 480;
};

std::string render_lines(const LinePlot& plot);

// Escapes &, <, >, " and ' for XML text and attributes.
std::string xml_escape(const std::string& text);

}  // namespace ropekit
