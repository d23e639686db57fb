#include "eval/plots.h"

#include <cstdio>

#include <opencv2/imgproc.hpp>

#include "image/render.h"

namespace pv::plots {

void write_roc_png(const std::filesystem::path& path, const std::string& title,
                   const std::vector<Curve>& curves) {
  constexpr int kSize = 560;
  constexpr int kLeft = 70, kTop = 50, kPlot = 440;
  const cv::Scalar kInk(40, 40, 40), kGrid(225, 225, 225);
  const cv::Scalar kColors[] = {cv::Scalar(180, 110, 30), cv::Scalar(20, 130, 245)};
  cv::Mat chart(kSize, kSize, CV_8UC3, cv::Scalar(255, 255, 255));
  const auto point = [&](double fpr, double tpr) {
    return cv::Point(kLeft + static_cast<int>(fpr * kPlot),
                     kTop + kPlot - static_cast<int>(tpr * kPlot));
  };
  for (int i = 0; i <= 5; ++i) {
    const double v = i / 5.0;
    cv::line(chart, point(v, 0), point(v, 1), kGrid, 1);
    cv::line(chart, point(0, v), point(1, v), kGrid, 1);
    char label[8];
    std::snprintf(label, sizeof label, "%.1f", v);
    cv::putText(chart, label, point(v, 0) + cv::Point(-12, 20), cv::FONT_HERSHEY_SIMPLEX, 0.4, kInk,
                1, cv::LINE_AA);
    cv::putText(chart, label, point(0, v) + cv::Point(-32, 5), cv::FONT_HERSHEY_SIMPLEX, 0.4, kInk,
                1, cv::LINE_AA);
  }
  for (int i = 0; i < 40; i += 2) {  // chance, dashed
    cv::line(chart, point(i / 40.0, i / 40.0), point((i + 1) / 40.0, (i + 1) / 40.0),
             cv::Scalar(160, 160, 160), 1);
  }
  cv::rectangle(chart, point(0, 1), point(1, 0), kInk, 1);
  for (std::size_t c = 0; c < curves.size(); ++c) {
    std::vector<cv::Point> line;
    for (std::size_t i = 0; i < curves[c].roc->fpr.size(); ++i) {
      line.push_back(point(curves[c].roc->fpr[i], curves[c].roc->tpr[i]));
    }
    cv::polylines(chart, line, false, kColors[c % 2], 2, cv::LINE_AA);
    const cv::Point legend = point(0.45, 0.08 + 0.08 * static_cast<double>(curves.size() - 1 - c));
    cv::line(chart, legend, legend + cv::Point(24, 0), kColors[c % 2], 3, cv::LINE_AA);
    cv::putText(chart, curves[c].label, legend + cv::Point(32, 5), cv::FONT_HERSHEY_SIMPLEX, 0.5,
                kInk, 1, cv::LINE_AA);
  }
  cv::putText(chart, title, {kLeft, 32}, cv::FONT_HERSHEY_SIMPLEX, 0.65, kInk, 1, cv::LINE_AA);
  cv::putText(chart, "false positive rate", {kLeft + kPlot / 2 - 70, kSize - 22},
              cv::FONT_HERSHEY_SIMPLEX, 0.5, kInk, 1, cv::LINE_AA);
  cv::Mat axis(24, 200, CV_8UC3, cv::Scalar(255, 255, 255));
  cv::putText(axis, "true positive rate", {8, 17}, cv::FONT_HERSHEY_SIMPLEX, 0.5, kInk, 1,
              cv::LINE_AA);
  cv::rotate(axis, axis, cv::ROTATE_90_COUNTERCLOCKWISE);
  axis.copyTo(chart(cv::Rect(8, kTop + kPlot / 2 - 100, axis.cols, axis.rows)));
  render::write_png(path, chart);
}

}  // namespace pv::plots
