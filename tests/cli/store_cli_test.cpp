// index, search, add-anomaly and reports as a user runs them: the embedded store, and the same
// answers from a real PostgreSQL + pgvector.
#include <array>
#include <cstdio>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "cli/run.h"
#include "store/pg_testing.h"
#include "store/postgres.h"
#include "store/store_testing.h"
#include "testing.h"

namespace pv {
namespace {

using testing::patchcore_test_image;
std::string data() {
  return testing::patchcore_data();
}
std::string test_image(const std::string& name) {
  return patchcore_test_image(name);
}

class StoreCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = std::make_unique<testing::TempDir>();
    const std::string weights =
        (testing::fixture_dir() / "patchcore" / "resnet18.safetensors").string();
    const CommandResult train =
        patchvec("train -q --data " + data() + " --category synthetic --backbone resnet18 " +
                 "--weights " + weights + " --out " + (*dir_ / "models").string());
    ASSERT_EQ(train.exit_code, 0) << train.output;
  }
  static void TearDownTestSuite() { dir_.reset(); }
  static std::string model() { return (*dir_ / "models" / "synthetic.pvm").string(); }

  static std::unique_ptr<testing::TempDir> dir_;
};
std::unique_ptr<testing::TempDir> StoreCli::dir_;

nlohmann::json run_json(const std::string& arguments) {
  const CommandResult run = patchvec(arguments, /*merge_stderr=*/false);
  EXPECT_EQ(run.exit_code, 0) << arguments << "\n" << run.output;
  return nlohmann::json::parse(run.output);
}

TEST_F(StoreCli, IndexThenSearchInAnotherProcess) {
  const std::string store = (*dir_ / "embedded.pvs").string();
  const auto index = run_json("index -q --model " + model() + " --data " + data() + " --store " +
                              store + " --json -");
  EXPECT_EQ(index["categories"][0]["images"], 12);  // 6 train + 3 good + 3 blob test images

  const auto normal = run_json("search -q --json " + test_image("good/000.png") + " --model " +
                               model() + " --store " + store);
  EXPECT_EQ(normal["verdict"], "normal") << normal.dump(2);
  EXPECT_TRUE(normal["report_id"].is_null());
  ASSERT_EQ(normal["matches"].size(), 9u);  // every stored normal image, best first
  // The query itself is stored (it is a test image): it comes first, at similarity 1.
  EXPECT_EQ(normal["matches"][0]["path"], test_image("good/000.png"));
  EXPECT_NEAR(normal["matches"][0]["similarity"].get<double>(), 1.0, 1e-6);
  for (const auto& m : normal["matches"]) EXPECT_EQ(m["label"], "normal");

  const auto defect = run_json("search -q --json " + test_image("blob/001.png") + " --model " +
                               model() + " --store " + store);
  EXPECT_EQ(defect["verdict"], "anomalous");
  ASSERT_TRUE(defect["report_id"].is_number());
  ASSERT_EQ(defect["matches"].size(), 3u);
  for (const auto& m : defect["matches"]) EXPECT_EQ(m["defect"], "blob");
  for (const char* field : {"score", "normalized", "best_similarity"}) {
    EXPECT_TRUE(defect[field].is_number()) << field;
  }

  const CommandResult added = patchvec("add-anomaly -q " + test_image("good/001.png") +
                                       " --defect fake --model " + model() + " --store " + store);
  ASSERT_EQ(added.exit_code, 0) << added.output;
  const auto again =
      run_json("search -q --json --min-similarity 1.01 " + test_image("good/002.png") +
               " --model " + model() + " --store " + store);
  EXPECT_EQ(again["verdict"], "anomalous");  // no stored image can be 1.01 similar
  bool fake_found = false;
  for (const auto& m : again["matches"]) fake_found |= m["defect"] == "fake";
  EXPECT_TRUE(fake_found) << again.dump(2);

  const auto reports = run_json("reports --json --store " + store);
  ASSERT_EQ(reports.size(), 2u);
  EXPECT_EQ(reports[0]["path"], test_image("good/002.png"));  // newest first
  EXPECT_EQ(reports[1]["id"], defect["report_id"]);
  const CommandResult table = patchvec("reports --store " + store);
  EXPECT_NE(table.output.find("blob"), std::string::npos) << table.output;

  // Re-indexing replaces the dataset's images; the anomaly a user added stays.
  run_json("index -q --model " + model() + " --data " + data() + " --store " + store + " --json -");
  const auto after = run_json("search -q --json --no-report " + test_image("blob/001.png") +
                              " --model " + model() + " --store " + store);
  ASSERT_EQ(after["matches"].size(), 4u);  // the three blobs once each, and the added one
  int fakes = 0;
  for (const auto& m : after["matches"]) fakes += m["defect"] == "fake";
  EXPECT_EQ(fakes, 1) << after.dump(2);
}

TEST_F(StoreCli, PostgresGivesTheEmbeddedStoresAnswers) {
  ASSERT_FALSE(testing::test_server_url().empty());
  const testing::ScratchDatabase database("test_store_cli");
  const std::string& url = database.url();
  const std::string store = (*dir_ / "compare.pvs").string();
  for (const std::string& where : {"--store " + store, "--db " + url}) {
    const auto index =
        run_json("index -q --model " + model() + " --data " + data() + " " + where + " --json -");
    EXPECT_EQ(index["categories"][0]["images"], 12) << where;
  }
  for (const char* image : {"good/000.png", "blob/002.png"}) {
    const auto embedded = run_json("search -q --json --no-report " + test_image(image) +
                                   " --model " + model() + " --store " + store);
    const auto postgres = run_json("search -q --json --no-report --exact " + test_image(image) +
                                   " --model " + model() + " --db " + url);
    EXPECT_EQ(embedded["verdict"], postgres["verdict"]) << image;
    ASSERT_EQ(embedded["matches"].size(), postgres["matches"].size()) << image;
    for (std::size_t i = 0; i < embedded["matches"].size(); ++i) {
      EXPECT_EQ(embedded["matches"][i]["path"], postgres["matches"][i]["path"]) << image << i;
      EXPECT_NEAR(embedded["matches"][i]["similarity"].get<double>(),
                  postgres["matches"][i]["similarity"].get<double>(), 1e-5);
    }
  }
}

// The operator's loop from the command line, the same on both stores: an anomaly is reported,
// resolved as a defect (a labelled anomaly from then on) or as a false alarm (a normal image,
// then part of the model's bank after update --from-reports).
void operator_loop(const std::string& model_file, const std::string& where) {
  const auto report = [&](const std::string& image) {
    const auto r = run_json("search -q --json --min-similarity 1.01 " + test_image(image) +
                            " --model " + model_file + " " + where);
    EXPECT_TRUE(r["report_id"].is_number()) << where << r.dump(2);
    return r["report_id"].get<std::int64_t>();
  };
  const std::int64_t defect = report("blob/000.png");
  const std::int64_t false_alarm = report("good/001.png");
  const auto open = run_json("reports --json --status open " + where);
  EXPECT_EQ(open.size(), 2u) << where;

  const auto resolved =
      run_json("resolve -q --json --report " + std::to_string(defect) +
               " --defect scratch --note first --by ana --model " + model_file + " " + where);
  EXPECT_EQ(resolved["status"], "resolved");
  EXPECT_EQ(resolved["resolution"], "defect");
  EXPECT_EQ(resolved["defect"], "scratch");
  EXPECT_EQ(resolved["resolved_by"], "ana");
  const CommandResult twice = patchvec("resolve --report " + std::to_string(defect) +
                                       " --false-alarm --model " + model_file + " " + where);
  EXPECT_EQ(twice.exit_code, 1);
  EXPECT_NE(twice.output.find("resolved already"), std::string::npos) << twice.output;
  const CommandResult neither = patchvec("resolve --report " + std::to_string(false_alarm) +
                                         " --model " + model_file + " " + where);
  EXPECT_NE(neither.output.find("--false-alarm, or --defect TYPE"), std::string::npos);
  // The labelled defect is now among the closest known defects of a similar image.
  const auto similar = run_json("search -q --json --no-report " + test_image("blob/001.png") +
                                " --model " + model_file + " " + where);
  bool named = false;
  for (const auto& m : similar["matches"]) named |= m["defect"] == "scratch";
  EXPECT_TRUE(named) << where << similar.dump(2);

  run_json("resolve -q --json --report " + std::to_string(false_alarm) + " --false-alarm --model " +
           model_file + " " + where);
  const auto update =
      run_json("update -q --json --from-reports --model " + model_file + " " + where);
  EXPECT_EQ(update["reports_applied"].size(), 1u);
  EXPECT_EQ(update["reports_applied"][0], false_alarm);
  EXPECT_EQ(update["revision"], 2);
  const auto again = run_json("update -q --json --from-reports --model " + model_file + " " +
                              where);  // nothing left to apply
  EXPECT_EQ(again["reports_applied"].size(), 0u);
  const auto listed = run_json("reports --json --status resolved " + where);
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_TRUE(listed[0]["applied"].get<bool>());  // the false alarm, newest first
  EXPECT_FALSE(listed[1]["applied"].get<bool>());
}

TEST_F(StoreCli, OperatorLoopOnBothStores) {
  ASSERT_FALSE(testing::test_server_url().empty());
  const testing::ScratchDatabase database("test_operator_loop");
  const std::string& url = database.url();
  const std::string store = (*dir_ / "loop.pvs").string();
  for (const std::string& where : {"--store " + store, "--db " + url}) {
    // A model of its own: update rewrites it.
    const auto copy = *dir_ / (where[2] == 's' ? "loop_embedded.pvm" : "loop_pg.pvm");
    std::filesystem::copy_file(model(), copy, std::filesystem::copy_options::overwrite_existing);
    run_json("index -q --model " + copy.string() + " --data " + data() + " " + where + " --json -");
    operator_loop(copy.string(), where);
  }
}

// apps/inspect_images, a program on the public API alone (docs/guide.md), answers as `patchvec
// search`.
TEST_F(StoreCli, ALibraryProgramAnswersAsSearchDoes) {
  testing::TempDir models;
  std::filesystem::copy_file(model(), models / "synthetic.pvm");
  const std::string store = (models / "store.pvs").string();
  run_json("index -q --model " + model() + " --data " + data() + " --store " + store + " --json -");
  const std::array<std::string, 2> images = {test_image("good/000.png"),
                                             test_image("blob/000.png")};
  const CommandResult example = run_program(
      INSPECT_IMAGES_BINARY, models.path().string() + " synthetic " + images[0] + " " + images[1],
      /*merge_stderr=*/false);
  ASSERT_EQ(example.exit_code, 0) << example.output;
  std::vector<nlohmann::json> lines;
  std::size_t start = 0;
  for (std::size_t end; (end = example.output.find('\n', start)) != std::string::npos;
       start = end + 1) {
    lines.push_back(nlohmann::json::parse(example.output.substr(start, end - start)));
  }
  ASSERT_EQ(lines.size(), 2u) << example.output;
  for (std::size_t i = 0; i < images.size(); ++i) {
    const auto search = run_json("search -q --json --no-report " + images[i] + " --model " +
                                 model() + " --store " + store);
    EXPECT_EQ(lines[i], search) << i;
  }
  EXPECT_EQ(lines[1]["verdict"], "anomalous");
  const CommandResult unknown =
      run_program(INSPECT_IMAGES_BINARY, models.path().string() + " wood " + images[0]);
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_NE(unknown.output.find("unknown category 'wood'"), std::string::npos) << unknown.output;
}

// index --from-store: the embedded store's images into PostgreSQL and back, with the answers of
// the store they came from; a second copy adds nothing.
TEST_F(StoreCli, IndexFromAnotherStoreGivesItsAnswers) {
  ASSERT_FALSE(testing::test_server_url().empty());
  const testing::ScratchDatabase database("test_store_copy");
  const std::string& url = database.url();
  const std::string source = (*dir_ / "copy-source.pvs").string();
  const std::string back = (*dir_ / "copy-back.pvs").string();
  run_json("index -q --model " + model() + " --data " + data() + " --store " + source +
           " --json -");
  ASSERT_EQ(patchvec("add-anomaly -q " + test_image("good/001.png") + " --defect fake --model " +
                     model() + " --store " + source)
                .exit_code,
            0);
  for (int run = 0; run < 2; ++run) {
    const auto copied = run_json("index -q --model " + model() + " --from-store " + source +
                                 " --db " + url + " --json -");
    EXPECT_EQ(copied["categories"][0]["images"], run == 0 ? 13 : 12);  // the added one once
    EXPECT_EQ(copied["categories"][0]["verified"], 2);
  }
  pg::Connection db(url);
  EXPECT_EQ(db.exec("SELECT count(*) FROM images").text(0, 0), "13");
  run_json("index -q --model " + model() + " --from-store " + url + " --store " + back +
           " --json -");
  for (const char* image : {"good/000.png", "blob/002.png"}) {
    const auto original = run_json("search -q --json --no-report --k 20 " + test_image(image) +
                                   " --model " + model() + " --store " + source);
    for (const std::string& where : {"--exact --db " + url, "--store " + back}) {
      const auto copy = run_json("search -q --json --no-report --k 20 " + test_image(image) +
                                 " --model " + model() + " " + where);
      EXPECT_EQ(copy["verdict"], original["verdict"]) << image << where;
      ASSERT_EQ(copy["matches"].size(), original["matches"].size()) << image << where;
      for (std::size_t i = 0; i < copy["matches"].size(); ++i) {
        EXPECT_EQ(copy["matches"][i]["path"], original["matches"][i]["path"]) << image << i;
        EXPECT_EQ(copy["matches"][i]["defect"], original["matches"][i]["defect"]) << image << i;
        EXPECT_NEAR(copy["matches"][i]["similarity"].get<double>(),
                    original["matches"][i]["similarity"].get<double>(), 1e-6);
      }
    }
  }
  const CommandResult both = patchvec("index --model " + model() + " --data " + data() +
                                      " --from-store " + source + " --db " + url);
  EXPECT_EQ(both.exit_code, 2);
  EXPECT_NE(both.output.find("--data excludes --from-store"), std::string::npos) << both.output;
  const CommandResult neither = patchvec("index --model " + model() + " --db " + url);
  EXPECT_EQ(neither.exit_code, 1);
  EXPECT_NE(neither.output.find("--data DIR, or --from-store STORE"), std::string::npos)
      << neither.output;
  const CommandResult missing =
      patchvec("index --model " + model() + " --from-store nowhere.pvs --db " + url);
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.output.find("--from-store nowhere.pvs: no such store file"), std::string::npos)
      << missing.output;
}

TEST_F(StoreCli, StoreErrorsAreClear) {
  const CommandResult down = patchvec("search " + test_image("good/000.png") + " --model " +
                                      model() + " --db postgresql://patchvec:x@127.0.0.1:1/none");
  EXPECT_EQ(down.exit_code, 1);
  EXPECT_NE(down.output.find("cannot connect to PostgreSQL"), std::string::npos) << down.output;
  const CommandResult since = patchvec("reports --store x.pvs --since yesterday");
  EXPECT_EQ(since.exit_code, 1);
  EXPECT_NE(since.output.find("--since yesterday: expected YYYY-MM-DD"), std::string::npos)
      << since.output;
  const CommandResult which = patchvec("reports");
  EXPECT_EQ(which.exit_code, 1);
  EXPECT_NE(which.output.find("--db URL or --store PATH"), std::string::npos) << which.output;
  // A store that does not exist is an error for reads, not an empty table.
  const CommandResult typo = patchvec("reports --store " + (*dir_ / "typo.pvs").string());
  EXPECT_EQ(typo.exit_code, 1);
  EXPECT_NE(typo.output.find("no store at " + (*dir_ / "typo.pvs").string()), std::string::npos)
      << typo.output;
  const CommandResult empty = patchvec("search " + test_image("good/000.png") + " --model " +
                                       model() + " --store " + (*dir_ / "empty.pvs").string());
  // A store without the category's images: the model alone decides, and says so.
  EXPECT_EQ(empty.exit_code, 0) << empty.output;
  EXPECT_NE(empty.output.find("Normal image (score below threshold (no stored images"),
            std::string::npos)
      << empty.output;
  EXPECT_NE(empty.output.find("no stored images of this category: patchvec index"),
            std::string::npos)
      << empty.output;
}

// Decisions are one line of text, and what a store holds from outside reaches the terminal
// escaped, never as control sequences.
TEST_F(StoreCli, ControlCharactersNeverReachTheTerminal) {
  const std::string store = (*dir_ / "control.pvs").string();
  ASSERT_EQ(
      patchvec("index -q --model " + model() + " --data " + data() + " --store " + store).exit_code,
      0);
  // The escape byte through printf (/bin/sh has no $'...').
  const CommandResult typed =
      patchvec("add-anomaly -q " + test_image("good/001.png") +
               " --defect \"$(printf 'crack\\033[2J')\" --model " + model() + " --store " + store);
  EXPECT_EQ(typed.exit_code, 1) << typed.output;
  EXPECT_NE(typed.output.find("--defect: the defect type contains control characters"),
            std::string::npos)
      << typed.output;
  const auto search =
      run_json("search -q --json --min-similarity 1.01 " + test_image("good/002.png") +
               " --model " + model() + " --store " + store);
  const auto id = search["report_id"].get<std::int64_t>();
  const CommandResult note = patchvec("resolve --report " + std::to_string(id) +
                                      " --false-alarm --note \"$(printf 'a\\rb')\" --model " +
                                      model() + " --store " + store);
  EXPECT_EQ(note.exit_code, 1) << note.output;
  EXPECT_NE(note.output.find("the note contains control characters"), std::string::npos)
      << note.output;
  // A report stored with an escape sequence in its name (an older version, another program).
  open_embedded_store(store)->add_report(
      {.path = "\x1b]0;owned\x07part\n.png", .category = "synthetic", .score = 9});
  const CommandResult table = patchvec("reports --store " + store);
  EXPECT_EQ(table.exit_code, 0) << table.output;
  EXPECT_EQ(table.output.find('\x1b'), std::string::npos) << table.output;
  EXPECT_NE(table.output.find("\\x1b]0;owned\\x07part\\x0a.png"), std::string::npos)
      << table.output;
}

}  // namespace
}  // namespace pv
