#include <cmath>
#include <limits>
#include <regex>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "ropekit/core/error.hpp"
#include "ropekit/plot/svg_plot.hpp"

using namespace ropekit;

namespace {

// Well-formedness by a small stack parser: every tag closes in order, attributes are quoted, no
// raw '&' or '<' in text. Enough to catch what a string-building renderer gets wrong.
bool well_formed(const std::string& xml, std::string& why) {
    std::vector<std::string> stack;
    std::size_t i = 0;
    while (i < xml.size()) {
        if (xml[i] == '&') {
            std::size_t semi = xml.find(';', i);
            std::string entity = xml.substr(i, semi == std::string::npos ? 0 : semi - i + 1);
            if (entity != "&amp;" && entity != "&lt;" && entity != "&gt;" && entity != "&quot;" &&
                entity != "&apos;") {
                why = "bad entity at " + std::to_string(i);
                return false;
            }
            i = semi + 1;
            continue;
        }
        if (xml[i] != '<') {
            ++i;
            continue;
        }
        std::size_t end = i + 1;
        char quote = 0;
        for (; end < xml.size(); ++end) {
            if (quote) {
                if (xml[end] == quote) quote = 0;
                if (xml[end] == '<') {
                    why = "'<' inside an attribute";
                    return false;
                }
            } else if (xml[end] == '"' || xml[end] == '\'') {
                quote = xml[end];
            } else if (xml[end] == '>') {
                break;
            }
        }
        if (end >= xml.size()) {
            why = "unterminated tag";
            return false;
        }
        std::string tag = xml.substr(i + 1, end - i - 1);
        i = end + 1;
        if (tag[0] == '?' || tag[0] == '!') continue;
        if (tag[0] == '/') {
            if (stack.empty() || stack.back() != tag.substr(1)) {
                why = "mismatched </" + tag.substr(1) + ">";
                return false;
            }
            stack.pop_back();
        } else if (tag.back() != '/') {
            stack.push_back(tag.substr(0, tag.find_first_of(" \n")));
        }
    }
    if (!stack.empty()) why = "unclosed <" + stack.back() + ">";
    return stack.empty();
}

std::size_t count(const std::string& s, const std::string& what) {
    std::size_t n = 0;
    for (std::size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
    return n;
}

// The fill of the cell at (x, y), from the rendered SVG.
std::vector<std::string> cell_fills(const std::string& svg) {
    std::vector<std::string> fills;
    std::regex cell("<rect class=\"cell\"[^>]*fill=\"(#[0-9a-f]{6})\"");
    for (auto it = std::sregex_iterator(svg.begin(), svg.end(), cell); it != std::sregex_iterator();
         ++it)
        fills.push_back((*it)[1]);
    return fills;
}

std::vector<double> cell_ys(const std::string& svg) {
    std::vector<double> ys;
    std::regex cell("<rect class=\"cell\" x=\"[-0-9.]+\" y=\"([-0-9.]+)\"");
    for (auto it = std::sregex_iterator(svg.begin(), svg.end(), cell); it != std::sregex_iterator();
         ++it)
        ys.push_back(std::stod((*it)[1]));
    return ys;
}

Heatmap ramp(std::size_t rows, std::size_t cols) {
    Heatmap h;
    h.rows = rows;
    h.cols = cols;
    for (std::size_t i = 0; i < rows * cols; ++i) h.values.push_back(static_cast<double>(i));
    h.title = "A & B <test>";
    h.x_label = "layer";
    h.y_label = "frequency index (0 = highest)";
    h.color_label = "mean chunk 2-norm";
    return h;
}

}  // namespace

TEST_CASE("viridis runs from dark purple to yellow through the anchors") {
    CHECK(viridis(0.0) == Rgb{68, 1, 84});
    CHECK(viridis(1.0) == Rgb{253, 231, 37});
    CHECK(viridis(0.5) == Rgb{38, 130, 142});
    CHECK(viridis(-3) == viridis(0));
    CHECK(viridis(7) == viridis(1));
    CHECK(viridis(std::nan("")) == viridis(0));
    CHECK(hex(viridis(1.0)) == "#fde725");
    // halfway between the first two anchors
    CHECK(viridis(1.0 / 16) == Rgb{70, 21, 102});
}

TEST_CASE("colour scales map endpoints to 0 and 1, log scales by decades") {
    ColorScale lin{2, 6, false};
    CHECK(lin.position(2) == 0);
    CHECK(lin.position(6) == 1);
    CHECK(lin.position(4) == doctest::Approx(0.5));
    CHECK(lin.position(100) == 1);
    ColorScale lg{1e-3, 10, true};
    CHECK(lg.position(1e-3) == doctest::Approx(0));
    CHECK(lg.position(1e-1) == doctest::Approx(0.5));
    CHECK(lg.position(0) == 0);
    CHECK(lg.position(-5) == 0);
}

TEST_CASE("nice ticks are 1-2-5 steps inside the range") {
    CHECK(nice_ticks(0, 10, 5) == std::vector<double>{0, 2, 4, 6, 8, 10});
    CHECK(nice_ticks(0.13, 0.87, 4) == std::vector<double>{0.2, 0.4, 0.6, 0.8});
    auto t = nice_ticks(-3, 7, 5);
    CHECK(t.front() == -2);
    CHECK(t.back() == 6);
    for (std::size_t i = 1; i < t.size(); ++i) CHECK(t[i] - t[i - 1] == doctest::Approx(2));
    CHECK(nice_ticks(5, 5) == std::vector<double>{5});
    CHECK(nice_ticks(1, std::numeric_limits<double>::infinity()).empty());
    CHECK(log_ticks(1e-3, 1e3) == std::vector<double>{1e-3, 1e-2, 1e-1, 1, 10, 100, 1000});
    CHECK(log_ticks(3, 60) == std::vector<double>{5, 10, 20, 50});
    CHECK(tick_label(0.4, 0.2) == "0.4");
    CHECK(tick_label(150, 50) == "150");
    CHECK(tick_label(2e-6, 1e-6) == "2e-06");
}

TEST_CASE("thinned labels never overlap and keep every one when there is room") {
    CHECK(thinned_label_indices(5, 100, 20).size() == 5);
    auto kept = thinned_label_indices(128, 600.0 / 128, 3 * 11 * 0.6);
    REQUIRE(kept.size() > 5);
    std::size_t step = kept[1] - kept[0];
    CHECK(static_cast<double>(step) * 600.0 / 128 >= 3 * 11 * 0.6);
    CHECK(kept.front() == 0);
    CHECK((step == 1 || step == 2 || step == 5 || step == 10));
    CHECK(thinned_label_indices(3, 1, 500) == std::vector<std::size_t>{0});
}

TEST_CASE("a heatmap is well-formed SVG with one rect per cell and escaped text") {
    Heatmap h = ramp(7, 5);
    std::string svg = render_heatmap(h);
    std::string why;
    CHECK_MESSAGE(well_formed(svg, why), why);
    CHECK(svg.rfind("<?xml", 0) == 0);
    CHECK(count(svg, "<rect class=\"cell\"") == 35);
    CHECK(svg.find("A &amp; B &lt;test&gt;") != std::string::npos);
    CHECK(svg.find("mean chunk 2-norm") != std::string::npos);
    CHECK(svg == render_heatmap(h));  // deterministic
}

TEST_CASE("heatmap colours: minimum is dark purple, maximum yellow, NaN grey") {
    Heatmap h = ramp(2, 3);
    h.values[4] = std::nan("");
    auto fills = cell_fills(render_heatmap(h));
    REQUIRE(fills.size() == 6);
    CHECK(fills[0] == "#440154");
    CHECK(fills[5] == "#fde725");
    CHECK(fills[4] == "#c8c8c8");
    h.color_max = 10;  // explicit limits stretch the scale
    CHECK(cell_fills(render_heatmap(h))[5] != "#fde725");
}

TEST_CASE("heatmap log colour scale spreads values spanning decades") {
    Heatmap h;
    h.rows = 1;
    h.cols = 3;
    h.values = {1e-3, 1e-1, 10};
    h.log_color = true;
    auto fills = cell_fills(render_heatmap(h));
    CHECK(fills[0] == "#440154");
    CHECK(fills[1] == hex(viridis(0.5)));
    CHECK(fills[2] == "#fde725");
    h.values = {0, -1, 0};
    CHECK_THROWS_AS(render_heatmap(h), Error);
}

TEST_CASE("row0_top puts row 0 at the top, otherwise at the bottom") {
    Heatmap h = ramp(4, 2);
    auto ys = cell_ys(render_heatmap(h));
    REQUIRE(ys.size() == 8);
    CHECK(ys[0] < ys[7]);
    h.row0_top = false;
    ys = cell_ys(render_heatmap(h));
    CHECK(ys[0] > ys[7]);
}

TEST_CASE("heatmap tick labels: given strings, thinned on a dense axis") {
    Heatmap h = ramp(2, 3);
    h.x_tick_labels = {"L0", "L1", "L2"};
    std::string svg = render_heatmap(h);
    CHECK(svg.find(">L1</text>") != std::string::npos);
    Heatmap dense = ramp(200, 2);
    svg = render_heatmap(dense);
    std::size_t y_labels = count(svg.substr(svg.find("class=\"y-ticks\"")), "text-anchor=\"end\"");
    CHECK(y_labels < 200);
    CHECK(y_labels >= 10);
    CHECK_THROWS_AS(render_heatmap(Heatmap{}), Error);
}

TEST_CASE("line plots draw each series, skip non-finite points and shade bands") {
    LinePlot p;
    p.title = "decay";
    p.x_label = "relative distance";
    p.x_units = "tokens";
    p.y_label = "logit";
    Series a{"ones", {0, 1, 2, 3, 4}, {1, 0.9, std::nan(""), 0.5, 0.4}, {}};
    Series b{"gaussian", {0, 1, 2, 3, 4}, {0, 0.1, -0.1, 0.05, 0}, {0.1, 0.1, 0.1, 0.1, 0.1}};
    p.series = {a, b};
    std::string svg = render_lines(p);
    std::string why;
    CHECK_MESSAGE(well_formed(svg, why), why);
    CHECK(count(svg, "<polyline class=\"line\"") == 3);  // NaN breaks "ones" into 2 + 2 points
    CHECK(count(svg, "<polygon class=\"band\"") == 1);
    CHECK(svg.find(">ones</text>") != std::string::npos);
    CHECK(svg.find("relative distance [tokens]") != std::string::npos);
    std::regex polyline("<polyline class=\"line\" points=\"([^\"]*)\"");
    std::smatch m;
    REQUIRE(std::regex_search(svg, m, polyline));
    CHECK(count(m[1], ",") == 2);
    CHECK(render_lines(p) == svg);
}

TEST_CASE("log x drops non-positive x and puts decades at equal spacing") {
    LinePlot p;
    p.log_x = true;
    p.series = {Series{"s", {0, 1, 10, 100}, {1, 2, 3, 4}, {}}};
    std::string svg = render_lines(p);
    std::regex poly(
        "<polyline class=\"line\" points=\"([-0-9.]+),[-0-9.]+ ([-0-9.]+),[-0-9.]+ ([-0-9.]+),");
    std::smatch m;
    REQUIRE(std::regex_search(svg, m, poly));
    double x1 = std::stod(m[1]), x10 = std::stod(m[2]), x100 = std::stod(m[3]);
    CHECK(x10 - x1 == doctest::Approx(x100 - x10).epsilon(1e-3));
    p.series = {Series{"s", {0, -1}, {1, 2}, {}}};
    CHECK_THROWS_AS(render_lines(p), Error);
}

#include "ropekit/plot/plot_dataset.hpp"

TEST_CASE("FILE:DATASET splits at the last colon unless the whole argument is a file") {
    using P = std::pair<std::string, std::string>;
    CHECK(split_file_dataset("norms.h5:q_norms") == P{"norms.h5", "q_norms"});
    CHECK(split_file_dataset("-:layer_q_norms") == P{"-", "layer_q_norms"});
    CHECK(split_file_dataset("norms.h5") == P{"norms.h5", ""});
    CHECK(split_file_dataset("a:b.h5:group/x") == P{"a:b.h5", "group/x"});
    CHECK(split_file_dataset(ROPEKIT_SOURCE_DIR "/CMakeLists.txt") ==
          P{ROPEKIT_SOURCE_DIR "/CMakeLists.txt", ""});
    CHECK(parse_plot_kind("lines") == PlotKind::lines);
    CHECK(parse_plot_kind("auto") == PlotKind::automatic);
    CHECK_THROWS_AS(parse_plot_kind("pie"), Error);
}
