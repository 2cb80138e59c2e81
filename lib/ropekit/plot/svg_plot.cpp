#include "ropekit/plot/svg_plot.hpp"

#include <algorithm>
#include <array>
#include <cmath>

#include <fmt/format.h>

#include "ropekit/core/error.hpp"

namespace ropekit {
namespace {

constexpr double kFont = 11;        // tick labels, legend
constexpr double kTitleFont = 15;   // figure title
constexpr double kAxisFont = 13;    // axis titles
constexpr double kCharWidth = 0.6;  // average glyph width / font size, DejaVu Sans-like

double text_width(const std::string& s, double font) {
    return static_cast<double>(s.size()) * font * kCharWidth;
}

// Coordinates with two decimals: exact enough for screens, identical on every run.
std::string num(double v) {
    std::string s = fmt::format("{:.2f}", v);
    if (s == "-0.00") s = "0.00";
    while (s.back() == '0') s.pop_back();
    if (s.back() == '.') s.pop_back();
    return s;
}

class Svg {
  public:
    Svg(double width, double height) {
        out_ = fmt::format(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" "
            "viewBox=\"0 0 {0} {1}\">\n"
            "<rect width=\"{0}\" height=\"{1}\" fill=\"#ffffff\"/>\n"
            "<g font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\" font-size=\"{2}\" "
            "fill=\"#222222\">\n",
            num(width), num(height), num(kFont));
    }
    void raw(const std::string& s) { out_ += s; }
    void line(double x1, double y1, double x2, double y2, const std::string& stroke = "#444444",
              double stroke_width = 1) {
        out_ += fmt::format(
            "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{}\" stroke-width=\"{}\"/>\n",
            num(x1), num(y1), num(x2), num(y2), stroke, num(stroke_width));
    }
    // anchor: start | middle | end; rotate: degrees about (x, y).
    void text(double x, double y, const std::string& s, const std::string& anchor = "middle",
              double font = kFont, double rotate = 0, const std::string& extra = "") {
        std::string transform = rotate != 0 ? fmt::format(" transform=\"rotate({} {} {})\"",
                                                          num(rotate), num(x), num(y))
                                            : "";
        std::string size = font != kFont ? fmt::format(" font-size=\"{}\"", num(font)) : "";
        out_ += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"{}\"{}{}{}>{}</text>\n", num(x),
                            num(y), anchor, size, transform, extra, xml_escape(s));
    }
    std::string finish() { return out_ + "</g>\n</svg>\n"; }

  private:
    std::string out_;
};

bool finite(double v) {
    return std::isfinite(v);
}

// A 1-2-5 step as multiple * 10^exponent, so tick values can be formed without drift
// (6 / 10 is exactly the double nearest 0.6; 3 * 0.2 is not).
struct Step {
    double multiple;
    int exponent;
    double value() const { return scaled(1); }
    double scaled(double k) const {
        double power = std::pow(10.0, std::abs(exponent));
        return exponent >= 0 ? k * multiple * power : k * multiple / power;
    }
};

Step nice_step(double range, std::size_t target) {
    double raw = range / static_cast<double>(std::max<std::size_t>(target, 1));
    int exponent = static_cast<int>(std::floor(std::log10(raw)));
    for (double m : {1.0, 2.0, 5.0}) {
        Step s{m, exponent};
        if (s.value() >= raw * (1 - 1e-9)) return s;
    }
    return {1.0, exponent + 1};
}

std::string with_units(const std::string& label, const std::string& units) {
    if (units.empty()) return label;
    return label.empty() ? "[" + units + "]" : label + " [" + units + "]";
}

// The rectangle data is drawn in, inside a figure of `width` x `height` px.
struct PlotArea {
    double left = 0, top = 0, width = 0, height = 0;
    double right() const { return left + width; }
    double bottom() const { return top + height; }
};

// Margins for a title, the y tick labels (widest_y_label px) and both axis titles on the left
// and below; `right` px on the right. `what` names the figure in the error when nothing fits.
PlotArea plot_area(double width, double height, bool titled, double widest_y_label, double right,
                   const std::string& what) {
    PlotArea a;
    a.top = titled ? 40 : 16;
    a.left = 12 + kAxisFont + 10 + widest_y_label + 8;
    const double bottom = 8 + kFont + 10 + kAxisFont + 12;
    a.width = width - a.left - right;
    a.height = height - a.top - bottom;
    if (a.width < 40 || a.height < 40)
        throw usage_error(what + ": figure too small for its labels");
    return a;
}

void draw_title(Svg& svg, double width, const std::string& title) {
    if (!title.empty())
        svg.text(width / 2, 24, title, "middle", kTitleFont, 0, " font-weight=\"bold\"");
}

void draw_frame(Svg& svg, const PlotArea& a) {
    svg.raw(
        fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" "
                    "stroke=\"#444444\"/>\n",
                    num(a.left), num(a.top), num(a.width), num(a.height)));
}

// The x title below the x tick labels, the y title turned left of the y tick labels.
void draw_axis_titles(Svg& svg, const PlotArea& a, double figure_height, const std::string& x,
                      const std::string& y) {
    svg.text(a.left + a.width / 2, figure_height - 12, x, "middle", kAxisFont);
    svg.text(14 + kAxisFont * 0.5, a.top + a.height / 2, y, "middle", kAxisFont, -90);
}

// ---- heatmaps

// Where a heatmap's cells are: area divided into rows x cols cells.
struct CellGrid {
    PlotArea area;
    std::size_t rows = 0, cols = 0;
    bool row0_top = true;
    double cell_width() const { return area.width / static_cast<double>(cols); }
    double cell_height() const { return area.height / static_cast<double>(rows); }
    double column_x(std::size_t c) const {
        return area.left + static_cast<double>(c) * cell_width();
    }
    double row_y(std::size_t r) const {
        const std::size_t slot = row0_top ? r : rows - 1 - r;
        return area.top + static_cast<double>(slot) * cell_height();
    }
};

std::string axis_tick_label(const std::vector<std::string>& given, std::size_t i) {
    return given.empty() ? std::to_string(i) : given[i];
}

double widest_tick_label(const std::vector<std::string>& given, std::size_t count) {
    double widest = 0;
    for (std::size_t i = 0; i < count; ++i)
        widest = std::max(widest, text_width(axis_tick_label(given, i), kFont));
    return widest;
}

// The colour bar's ticks and how each is labelled.
struct ColorBarTicks {
    std::vector<double> values;
    double step = 0;
    bool log = false;
    std::string label(double v) const { return log ? fmt::format("{:g}", v) : tick_label(v, step); }
    double widest() const {
        double widest = 0;
        for (double v : values) widest = std::max(widest, text_width(label(v), kFont));
        return widest;
    }
};

ColorBarTicks color_bar_ticks(const ColorScale& scale) {
    ColorBarTicks t;
    t.log = scale.log;
    t.values = scale.log ? log_ticks(scale.min, scale.max) : nice_ticks(scale.min, scale.max, 5);
    t.step = t.values.size() > 1 ? t.values[1] - t.values[0] : 0;
    return t;
}

// Cells; widths overlap by a hair so no background seams show between them.
void draw_cells(Svg& svg, const Heatmap& h, const CellGrid& grid, const ColorScale& scale) {
    svg.raw("<g class=\"cells\" shape-rendering=\"crispEdges\">\n");
    for (std::size_t r = 0; r < h.rows; ++r) {
        for (std::size_t c = 0; c < h.cols; ++c) {
            double v = h.values[r * h.cols + c];
            std::string fill = finite(v) ? hex(viridis(scale.position(v))) : "#c8c8c8";
            svg.raw(fmt::format(
                "<rect class=\"cell\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\"/>\n",
                num(grid.column_x(c)), num(grid.row_y(r)), num(grid.cell_width() + 0.3),
                num(grid.cell_height() + 0.3), fill));
        }
    }
    svg.raw("</g>\n");
}

// Tick labels at cell centres, thinned so none overlap.
void draw_cell_ticks(Svg& svg, const Heatmap& h, const CellGrid& grid) {
    const PlotArea& a = grid.area;
    const double widest_x = widest_tick_label(h.x_tick_labels, h.cols);
    svg.raw("<g class=\"x-ticks\">\n");
    for (std::size_t c : thinned_label_indices(h.cols, grid.cell_width(), widest_x)) {
        double x = a.left + (static_cast<double>(c) + 0.5) * grid.cell_width();
        svg.line(x, a.bottom(), x, a.bottom() + 4);
        svg.text(x, a.bottom() + 6 + kFont, axis_tick_label(h.x_tick_labels, c));
    }
    svg.raw("</g>\n<g class=\"y-ticks\">\n");
    for (std::size_t r : thinned_label_indices(h.rows, grid.cell_height(), kFont * 1.1)) {
        double y = grid.row_y(r) + grid.cell_height() / 2;
        svg.line(a.left - 4, y, a.left, y);
        svg.text(a.left - 6, y + kFont * 0.35, axis_tick_label(h.y_tick_labels, r), "end");
    }
    svg.raw("</g>\n");
}

// Colour bar right of the cells: a vertical gradient with the same 9 anchors, maximum at the
// top, its ticks, and its title turned along the figure's right edge.
void draw_color_bar(Svg& svg, const Heatmap& h, const PlotArea& a, const ColorScale& scale,
                    const ColorBarTicks& ticks) {
    const double bx = a.right() + 18, bw = 16;
    svg.raw("<defs><linearGradient id=\"colorbar\" x1=\"0\" y1=\"1\" x2=\"0\" y2=\"0\">\n");
    for (int i = 0; i <= 8; ++i) {
        svg.raw(fmt::format("<stop offset=\"{}\" stop-color=\"{}\"/>\n", num(i / 8.0),
                            hex(viridis(i / 8.0))));
    }
    svg.raw("</linearGradient></defs>\n");
    svg.raw(
        fmt::format("<rect class=\"colorbar\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" "
                    "fill=\"url(#colorbar)\" stroke=\"#444444\"/>\n",
                    num(bx), num(a.top), num(bw), num(a.height)));
    svg.raw("<g class=\"colorbar-ticks\">\n");
    for (double v : ticks.values) {
        double y = a.top + a.height * (1 - scale.position(v));
        svg.line(bx + bw, y, bx + bw + 4, y);
        svg.text(bx + bw + 6, y + kFont * 0.35, ticks.label(v), "start");
    }
    svg.raw("</g>\n");
    std::string bar_title = with_units(h.color_label, h.color_units);
    if (scale.log) bar_title += " (log scale)";
    svg.text(h.width - 12 - kAxisFont * 0.3, a.top + a.height / 2, bar_title, "middle", kAxisFont,
             -90);
}

// ---- line plots

const std::array<const char*, 8> kPalette{"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728",
                                          "#9467bd", "#8c564b", "#e377c2", "#17becf"};

// A point is drawn when both coordinates are finite (and x > 0 on a log axis).
bool usable(double x, double y, bool log_x) {
    return finite(x) && finite(y) && (!log_x || x > 0);
}

// The data's extent, bands included, widened when it is a single value.
struct DataRange {
    double xlo = std::numeric_limits<double>::infinity(), xhi = -xlo, ylo = xlo, yhi = -xlo;
};

DataRange data_range(const LinePlot& p) {
    DataRange d;
    for (const auto& s : p.series) {
        if (s.x.size() != s.y.size() || (!s.band.empty() && s.band.size() != s.y.size())) {
            throw usage_error("line plot: series '" + s.name +
                              "' has x, y and band of different lengths");
        }
        for (std::size_t i = 0; i < s.x.size(); ++i) {
            if (!usable(s.x[i], s.y[i], p.log_x)) continue;
            double b = s.band.empty() || !finite(s.band[i]) ? 0 : std::abs(s.band[i]);
            d.xlo = std::min(d.xlo, s.x[i]);
            d.xhi = std::max(d.xhi, s.x[i]);
            d.ylo = std::min(d.ylo, s.y[i] - b);
            d.yhi = std::max(d.yhi, s.y[i] + b);
        }
    }
    if (!finite(d.xlo)) throw usage_error("line plot: no finite point to draw");
    return d;
}

void widen_single_values(DataRange& d, bool log_x) {
    if (d.ylo == d.yhi) {
        double pad = d.ylo == 0 ? 1 : std::abs(d.ylo) * 0.1;
        d.ylo -= pad;
        d.yhi += pad;
    }
    if (d.xlo == d.xhi) {
        if (log_x) {
            d.xlo /= 2;
            d.xhi *= 2;
        } else {
            d.xlo -= 1;
            d.xhi += 1;
        }
    }
}

// A line plot's axes: the data range (y widened to whole tick steps) and the ticks on each.
struct LineAxes {
    DataRange range;
    std::vector<double> x_ticks, y_ticks;
    double x_step = 0, y_step = 1;
    bool log_x = false;
};

LineAxes line_axes(DataRange d, bool log_x) {
    LineAxes axes;
    axes.log_x = log_x;
    std::vector<double> yt = nice_ticks(d.ylo, d.yhi, 6);
    axes.y_step = yt.size() > 1 ? yt[1] - yt[0] : 1;
    d.ylo = std::floor(d.ylo / axes.y_step + 1e-9) * axes.y_step;
    d.yhi = std::ceil(d.yhi / axes.y_step - 1e-9) * axes.y_step;
    axes.y_ticks = nice_ticks(d.ylo, d.yhi, 6);
    axes.x_ticks = log_x ? log_ticks(d.xlo, d.xhi) : nice_ticks(d.xlo, d.xhi, 7);
    axes.x_step = !log_x && axes.x_ticks.size() > 1 ? axes.x_ticks[1] - axes.x_ticks[0] : 0;
    axes.range = d;
    return axes;
}

// Data coordinates to figure coordinates.
struct LineFrame {
    PlotArea area;
    LineAxes axes;
    double x(double v) const {
        const DataRange& d = axes.range;
        double t = axes.log_x
                       ? (std::log(v) - std::log(d.xlo)) / (std::log(d.xhi) - std::log(d.xlo))
                       : (v - d.xlo) / (d.xhi - d.xlo);
        return area.left + t * area.width;
    }
    double y(double v) const {
        const DataRange& d = axes.range;
        return area.top + (1 - (v - d.ylo) / (d.yhi - d.ylo)) * area.height;
    }
};

void draw_grid_and_ticks(Svg& svg, const LineFrame& f) {
    const PlotArea& a = f.area;
    const LineAxes& axes = f.axes;
    svg.raw("<g class=\"grid\">\n");
    for (double v : axes.y_ticks) svg.line(a.left, f.y(v), a.right(), f.y(v), "#e6e6e6");
    for (double v : axes.x_ticks) svg.line(f.x(v), a.top, f.x(v), a.bottom(), "#e6e6e6");
    svg.raw("</g>\n<g class=\"x-ticks\">\n");
    for (double v : axes.x_ticks) {
        svg.line(f.x(v), a.bottom(), f.x(v), a.bottom() + 4);
        svg.text(f.x(v), a.bottom() + 6 + kFont,
                 axes.log_x ? fmt::format("{:g}", v) : tick_label(v, axes.x_step));
    }
    svg.raw("</g>\n<g class=\"y-ticks\">\n");
    for (double v : axes.y_ticks) {
        svg.line(a.left - 4, f.y(v), a.left, f.y(v));
        svg.text(a.left - 6, f.y(v) + kFont * 0.35, tick_label(v, axes.y_step), "end");
    }
    svg.raw("</g>\n");
}

// Runs of consecutive usable points: a skipped point breaks the line and the band.
std::vector<std::vector<std::size_t>> usable_runs(const Series& s, bool log_x) {
    std::vector<std::vector<std::size_t>> runs(1);
    for (std::size_t i = 0; i < s.x.size(); ++i) {
        if (usable(s.x[i], s.y[i], log_x)) {
            runs.back().push_back(i);
        } else if (!runs.back().empty()) {
            runs.emplace_back();
        }
    }
    return runs;
}

// The band y +- |band| along a run: the upper edge forwards, the lower edge back.
void draw_band(Svg& svg, const LineFrame& f, const Series& s, const std::vector<std::size_t>& run,
               const char* colour) {
    std::string points;
    for (std::size_t i : run)
        points += num(f.x(s.x[i])) + "," + num(f.y(s.y[i] + std::abs(s.band[i]))) + " ";
    for (auto it = run.rbegin(); it != run.rend(); ++it)
        points += num(f.x(s.x[*it])) + "," + num(f.y(s.y[*it] - std::abs(s.band[*it]))) + " ";
    points.pop_back();
    svg.raw(
        fmt::format("<polygon class=\"band\" points=\"{}\" fill=\"{}\" "
                    "fill-opacity=\"0.22\" stroke=\"none\"/>\n",
                    points, colour));
}

// A run of one point is a dot, a longer one a polyline.
void draw_run(Svg& svg, const LineFrame& f, const Series& s, const std::vector<std::size_t>& run,
              const char* colour) {
    if (run.size() == 1) {
        svg.raw(fmt::format("<circle class=\"point\" cx=\"{}\" cy=\"{}\" r=\"2\" fill=\"{}\"/>\n",
                            num(f.x(s.x[run[0]])), num(f.y(s.y[run[0]])), colour));
    } else if (run.size() > 1) {
        std::string points;
        for (std::size_t i : run) points += num(f.x(s.x[i])) + "," + num(f.y(s.y[i])) + " ";
        points.pop_back();
        svg.raw(
            fmt::format("<polyline class=\"line\" points=\"{}\" fill=\"none\" "
                        "stroke=\"{}\" stroke-width=\"1.6\" stroke-linejoin=\"round\"/>\n",
                        points, colour));
    }
}

// Every series in its palette colour, clipped to the plot area.
void draw_series(Svg& svg, const LineFrame& f, const std::vector<Series>& series) {
    const PlotArea& a = f.area;
    svg.raw(
        fmt::format("<clipPath id=\"plot-area\"><rect x=\"{}\" y=\"{}\" width=\"{}\" "
                    "height=\"{}\"/></clipPath>\n<g clip-path=\"url(#plot-area)\">\n",
                    num(a.left), num(a.top), num(a.width), num(a.height)));
    for (std::size_t si = 0; si < series.size(); ++si) {
        const Series& s = series[si];
        const char* colour = kPalette[si % kPalette.size()];
        for (const auto& run : usable_runs(s, f.axes.log_x)) {
            if (!s.band.empty() && run.size() > 1) draw_band(svg, f, s, run, colour);
            draw_run(svg, f, s, run, colour);
        }
    }
    svg.raw("</g>\n");
}

// Legend in the top-right corner of the plot area, on a white box: named series only, each in
// its palette colour.
void draw_legend(Svg& svg, const PlotArea& a, const std::vector<Series>& series) {
    std::vector<const Series*> named;
    for (const auto& s : series)
        if (!s.name.empty()) named.push_back(&s);
    if (named.empty()) return;
    double widest = 0;
    for (const Series* s : named) widest = std::max(widest, text_width(s->name, kFont));
    double lw = widest + 40, lh = 8 + 16 * static_cast<double>(named.size());
    double lx = a.right() - lw - 8, ly = a.top + 8;
    svg.raw(
        fmt::format("<g class=\"legend\">\n<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" "
                    "fill=\"#ffffff\" fill-opacity=\"0.85\" stroke=\"#bbbbbb\"/>\n",
                    num(lx), num(ly), num(lw), num(lh)));
    for (std::size_t i = 0; i < series.size(); ++i) {
        if (series[i].name.empty()) continue;
        std::size_t slot = static_cast<std::size_t>(
            std::find(named.begin(), named.end(), &series[i]) - named.begin());
        double y = ly + 12 + 16 * static_cast<double>(slot);
        svg.line(lx + 8, y, lx + 28, y, kPalette[i % kPalette.size()], 2);
        svg.text(lx + 34, y + kFont * 0.35, series[i].name, "start");
    }
    svg.raw("</g>\n");
}

}  // namespace

std::string hex(Rgb c) {
    return fmt::format("#{:02x}{:02x}{:02x}", c.r, c.g, c.b);
}

Rgb viridis(double t) {
    static constexpr std::array<Rgb, 9> kAnchors{{{68, 1, 84},
                                                  {72, 40, 120},
                                                  {62, 73, 137},
                                                  {49, 104, 142},
                                                  {38, 130, 142},
                                                  {31, 158, 137},
                                                  {53, 183, 121},
                                                  {110, 206, 88},
                                                  {253, 231, 37}}};
    if (!(t > 0)) return kAnchors.front();  // also NaN
    if (t >= 1) return kAnchors.back();
    double x = t * static_cast<double>(kAnchors.size() - 1);
    auto i = static_cast<std::size_t>(x);
    double f = x - static_cast<double>(i);
    auto mix = [f](std::uint8_t a, std::uint8_t b) {
        return static_cast<std::uint8_t>(std::lround(a + f * (b - a)));
    };
    const Rgb& a = kAnchors[i];
    const Rgb& b = kAnchors[i + 1];
    return {mix(a.r, b.r), mix(a.g, b.g), mix(a.b, b.b)};
}

double ColorScale::position(double value) const {
    if (std::isnan(value)) return value;
    double t;
    if (log) {
        if (value <= 0) return 0;
        t = (std::log(value) - std::log(min)) / (std::log(max) - std::log(min));
    } else {
        t = (value - min) / (max - min);
    }
    if (!(max > min)) t = 0.5;  // a constant image: one mid colour
    return std::clamp(t, 0.0, 1.0);
}

std::vector<double> nice_ticks(double lo, double hi, std::size_t target) {
    if (!finite(lo) || !finite(hi)) return {};
    if (hi < lo) std::swap(lo, hi);
    if (hi == lo) return {lo};
    Step step = nice_step(hi - lo, target);
    std::vector<double> ticks;
    double eps = step.value() * 1e-9;
    for (double k = std::ceil((lo - eps) / step.value()); step.scaled(k) <= hi + eps; k += 1) {
        double v = step.scaled(k);
        ticks.push_back(std::abs(v) < eps ? 0.0 : v);
    }
    return ticks;
}

std::vector<double> log_ticks(double lo, double hi) {
    if (!(lo > 0) || !finite(hi) || hi < lo) return {};
    int first = static_cast<int>(std::floor(std::log10(lo) + 1e-9));
    int last = static_cast<int>(std::ceil(std::log10(hi) - 1e-9));
    bool sparse = last - first < 3;
    std::vector<double> ticks;
    for (int e = first; e <= last; ++e) {
        for (double m : {1.0, 2.0, 5.0}) {
            if (m != 1.0 && !sparse) continue;
            double v = m * std::pow(10.0, e);
            if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9)) ticks.push_back(v);
        }
    }
    return ticks;
}

std::string tick_label(double value, double step) {
    if (value == 0) return "0";
    double a = std::abs(value);
    if (a >= 1e5 || a < 1e-4) {
        std::string s = fmt::format("{:.3g}", value);
        return s;
    }
    int decimals =
        step > 0 ? std::max(0, -static_cast<int>(std::floor(std::log10(step) + 1e-9))) : 3;
    return fmt::format("{:.{}f}", value, std::min(decimals, 6));
}

std::vector<std::size_t> thinned_label_indices(std::size_t count, double spacing_px,
                                               double widest_px) {
    constexpr double kGap = 4;
    std::size_t every = 1;
    auto fits = [&](std::size_t k) {
        return static_cast<double>(k) * spacing_px >= widest_px + kGap;
    };
    for (std::size_t magnitude = 1; !fits(every) && every < count; magnitude *= 10) {
        for (std::size_t m : {1, 2, 5}) {
            every = m * magnitude;
            if (fits(every) || every >= count) break;
        }
    }
    std::vector<std::size_t> kept;
    for (std::size_t i = 0; i < count; i += every) kept.push_back(i);
    return kept;
}

std::string xml_escape(const std::string& text) {
    std::string out;
    out.reserve(text.size());
    for (char c : text) {
        switch (c) {
            case '&':
                out += "&amp;";
                break;
            case '<':
                out += "&lt;";
                break;
            case '>':
                out += "&gt;";
                break;
            case '"':
                out += "&quot;";
                break;
            case '\'':
                out += "&apos;";
                break;
            default:
                out += c;
        }
    }
    return out;
}

ColorScale heatmap_color_scale(const Heatmap& h) {
    ColorScale scale;
    scale.log = h.log_color;
    double lo = std::numeric_limits<double>::infinity(), hi = -lo;
    for (double v : h.values) {
        if (!finite(v) || (h.log_color && v <= 0)) continue;
        lo = std::min(lo, v);
        hi = std::max(hi, v);
    }
    scale.min = finite(h.color_min) ? h.color_min : lo;
    scale.max = finite(h.color_max) ? h.color_max : hi;
    if (!finite(scale.min) || !finite(scale.max)) {
        throw usage_error(h.log_color ? "heatmap: no positive finite value to draw on a log scale"
                                      : "heatmap: no finite value to draw");
    }
    if (h.log_color && !(scale.min > 0))
        throw usage_error("heatmap: log colour scale needs min > 0");
    return scale;
}

std::string render_heatmap(const Heatmap& h) {
    if (h.rows == 0 || h.cols == 0 || h.values.size() != h.rows * h.cols) {
        throw usage_error(fmt::format("heatmap: {} values do not fill {} x {} cells",
                                      h.values.size(), h.rows, h.cols));
    }
    const ColorScale scale = heatmap_color_scale(h);
    const ColorBarTicks bar_ticks = color_bar_ticks(scale);
    const double right_margin = 18 + 16 + 6 + bar_ticks.widest() + 10 + kAxisFont + 12;
    const PlotArea area =
        plot_area(h.width, h.height, !h.title.empty(), widest_tick_label(h.y_tick_labels, h.rows),
                  right_margin, "heatmap");
    const CellGrid grid{area, h.rows, h.cols, h.row0_top};

    Svg svg(h.width, h.height);
    draw_title(svg, h.width, h.title);
    draw_cells(svg, h, grid, scale);
    draw_frame(svg, area);
    draw_cell_ticks(svg, h, grid);
    draw_axis_titles(svg, area, h.height, h.x_label, h.y_label);
    draw_color_bar(svg, h, area, scale, bar_ticks);
    return svg.finish();
}

std::string render_lines(const LinePlot& p) {
    DataRange range = data_range(p);
    if (p.y_from_zero) {
        range.ylo = std::min(range.ylo, 0.0);
        range.yhi = std::max(range.yhi, 0.0);
    }
    widen_single_values(range, p.log_x);
    const LineAxes axes = line_axes(range, p.log_x);
    double widest_y = 0;
    for (double v : axes.y_ticks)
        widest_y = std::max(widest_y, text_width(tick_label(v, axes.y_step), kFont));
    const LineFrame frame{plot_area(p.width, p.height, !p.title.empty(), widest_y, 20, "line plot"),
                          axes};

    Svg svg(p.width, p.height);
    draw_title(svg, p.width, p.title);
    draw_grid_and_ticks(svg, frame);
    draw_series(svg, frame, p.series);
    draw_frame(svg, frame.area);
    draw_axis_titles(svg, frame.area, p.height,
                     with_units(p.x_label, p.x_units) + (p.log_x ? " (log scale)" : ""),
                     with_units(p.y_label, p.y_units));
    draw_legend(svg, frame.area, p.series);
    return svg.finish();
}

}  // namespace ropekit
