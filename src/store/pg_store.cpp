// The PostgreSQL + pgvector store.
//
// The schema is sql/NNN_*.sql (store/migrations.h), applied in order on open under an advisory
// lock; the embedding columns get their dimension with the first load.
// HNSW indexes (images: vector_cosine_ops, patches: vector_l2_ops) are built by build_indexes()
// after loading, which is much faster than maintaining them row by row.
#include <atomic>
#include <chrono>
#include <limits>
#include <type_traits>

#include <nlohmann/json.hpp>

#include <patchvec/error.h>
#include <patchvec/store.h>

#include "store/forms.h"
#include "store/postgres.h"
#include "store/schema.h"

namespace pv {
namespace {

// Connections a store opens at most: searches of concurrent inspections overlap.
constexpr std::size_t kConnections = 4;

const char* kImageColumns = "id, path, category, split, anomalous, defect, score, verdict";
constexpr int kImageColumnCount = 8;

StoredImage image_from(const pg::Result& r, int row) {
  StoredImage image;
  image.id = std::stoll(r.text(row, 0));
  image.path = r.text(row, 1);
  image.category = r.text(row, 2);
  image.split = parse_split(r.text(row, 3), "stored split");
  image.anomalous = r.text(row, 4) == "t";
  image.defect = r.text(row, 5);
  if (const auto score = r.get(row, 6)) image.score = std::stof(*score);
  image.verdict = store::stored_verdict(r.text(row, 7));
  return image;
}

const char* kReportColumns =
    "id, path, category, score, threshold, best_similarity, "
    "to_char(created AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), matches, image, "
    "status, coalesce(resolution, ''), defect, note, resolved_by, "
    "coalesce(to_char(resolved_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), ''), "
    "applied, coalesce(idempotency_key, '')";

AnomalyReport report_from(const pg::Result& r, int row) {
  AnomalyReport report;
  report.id = std::stoll(r.text(row, 0));
  report.path = r.text(row, 1);
  report.category = r.text(row, 2);
  report.score = std::stof(r.text(row, 3));
  report.threshold = r.get(row, 4) ? std::stof(r.text(row, 4)) : 0.0f;
  report.best_similarity = std::stod(r.text(row, 5));
  report.created = r.text(row, 6);
  for (const auto& m : nlohmann::json::parse(r.text(row, 7)))
    report.matches.push_back(store::match_from(m));
  report.image = r.text(row, 8);
  report.status = parse_report_status(r.text(row, 9));
  report.resolution = store::stored_resolution(r.text(row, 10));
  report.defect = r.text(row, 11);
  report.note = r.text(row, 12);
  report.resolved_by = r.text(row, 13);
  report.resolved_at = r.text(row, 14);
  report.applied = r.text(row, 15) == "t";
  report.idempotency_key = r.text(row, 16);
  return report;
}

std::optional<std::string> optional_bool(const std::optional<bool>& b) {
  if (!b) return std::nullopt;
  return std::string(*b ? "true" : "false");
}

class PostgresStore final : public VectorStore {
 public:
  // Reads on any host that answers, a standby first; writes on the primary, connected when the
  // first one comes (a store opens while the primary is away).
  PostgresStore(const std::string& url, bool exact)
      : reads_(url, kConnections, "prefer-standby"),
        writes_(url, kConnections, "read-write", /*lazy=*/true),
        exact_(exact) {
    pg::ensure_schema(reads_, writes_);
  }

  std::size_t replace_dataset(const std::string& category,
                              std::span<const StoredImage> images) override {
    store::check_dataset_images(images);
    const auto db = writes_.lease();
    const char* remove = "DELETE FROM images WHERE category = $1 AND split <> 'added'";
    if (images.empty()) {
      pg::Transaction t(*db);
      if (has_vector_tables(*db)) db->exec(remove, {category});
      t.commit();
      return 0;
    }
    pg::Transaction t(*db);
    ensure_vector_tables(*db, images.front().embedding.size());
    db->exec(
        "INSERT INTO categories (name) VALUES ($1) ON CONFLICT (name) DO UPDATE SET "
        "indexed_at = now()",
        {category});
    // Loading is faster without the index; searches stay correct (exact) until it is rebuilt.
    db->exec("DROP INDEX IF EXISTS images_embedding_hnsw");
    db->exec(remove, {category});
    pg::CopyBuffer rows;
    for (const StoredImage& image : images) {
      check_dimension(image.embedding.size());
      rows.begin_row(8);
      rows.add_text(image.path);
      rows.add_text(category);
      rows.add_text(split_name(image.split));
      rows.add_bool(image.anomalous);
      rows.add_text(image.defect);
      image.score ? rows.add_float(*image.score) : rows.add_null();
      rows.add_text(verdict_name(image.verdict));
      rows.add_vector(image.embedding);
    }
    db->copy_in(
        "COPY images (path, category, split, anomalous, defect, score, verdict, embedding) "
        "FROM STDIN (FORMAT BINARY)",
        rows.finish());
    t.commit();
    return images.size();
  }

  std::int64_t add_image(const StoredImage& image) override {
    const auto db = writes_.lease();
    pg::Transaction t(*db);
    const std::int64_t id = insert_added(*db, image);
    t.commit();
    return id;
  }

  double build_indexes() override {
    const auto db = writes_.lease();
    if (!has_vector_tables(*db)) return 0;
    const auto start = std::chrono::steady_clock::now();
    db->exec("SET maintenance_work_mem = '512MB'");
    db->exec(
        "CREATE INDEX IF NOT EXISTS images_embedding_hnsw ON images USING hnsw "
        "(embedding vector_cosine_ops)");
    db->exec("RESET maintenance_work_mem");
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }

  std::vector<Match> nearest(std::span<const float> query, std::size_t k,
                             const MatchFilter& filter) const override {
    return reads_.read([&](pg::Connection& db) -> std::vector<Match> {
      if (!has_vector_tables(db)) return {};
      check_dimension(query.size());
      pg::Transaction t(db);
      if (exact_) {
        db.exec("SET LOCAL enable_indexscan = off");
      } else {
        // Filtered HNSW scans keep looking until they have k rows (pgvector 0.8).
        db.exec("SET LOCAL hnsw.ef_search = 100");
        db.exec("SET LOCAL hnsw.iterative_scan = relaxed_order");
      }
      // Relaxed order: the inner scan may return rows slightly out of order; sort them again.
      const pg::Result r = db.exec(
          std::string("WITH candidates AS MATERIALIZED (SELECT ") + kImageColumns +
              ", embedding <=> $1::vector AS distance FROM images "
              "WHERE ($2 = '' OR category = $2) AND ($3::boolean IS NULL OR anomalous = $3) "
              "ORDER BY embedding <=> $1::vector LIMIT $4) "
              "SELECT *, 1 - distance FROM candidates ORDER BY distance, id",
          {pg::vector_text(query), filter.category, optional_bool(filter.anomalous),
           std::to_string(k)});
      t.commit();
      std::vector<Match> matches;
      matches.reserve(static_cast<std::size_t>(r.rows()));
      for (int row = 0; row < r.rows(); ++row) {
        matches.push_back({image_from(r, row), std::stod(r.text(row, kImageColumnCount + 1))});
      }
      return matches;
    });
  }

  std::int64_t add_report(const AnomalyReport& report) override {
    const auto db = writes_.lease();
    nlohmann::json matches = nlohmann::json::array();
    for (const Match& m : report.matches) matches.push_back(store::match_json(m));
    const std::optional<std::string> key =
        report.idempotency_key.empty() ? std::nullopt : std::optional(report.idempotency_key);
    pg::Transaction t(*db);
    const pg::Result r = db->exec(
        "INSERT INTO reports (path, category, score, threshold, best_similarity, matches, image, "
        "created, idempotency_key) VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, "
        "coalesce($8::timestamptz, now()), $9) ON CONFLICT (idempotency_key) DO NOTHING "
        "RETURNING id",
        {report.path, report.category, std::to_string(report.score),
         std::to_string(report.threshold), std::to_string(report.best_similarity), matches.dump(),
         report.image, report.created.empty() ? std::nullopt : std::optional(report.created), key});
    // Stored before under this key: its id (the conflicting row is visible to this statement).
    const pg::Result id =
        r.rows() > 0 ? r : db->exec("SELECT id FROM reports WHERE idempotency_key = $1", {key});
    t.commit();
    return std::stoll(id.text(0, 0));
  }

  std::vector<AnomalyReport> reports(const ReportQuery& query) const override {
    return reads_.read([&](pg::Connection& db) -> std::vector<AnomalyReport> {
      const pg::Result r = db.exec(
          std::string("SELECT ") + kReportColumns +
              " FROM reports WHERE ($1 = '' OR category = $1) AND ($4 = '' OR status = $4) AND "
              "($3::text IS NULL OR created >= ($3::timestamp AT TIME ZONE 'UTC')) "
              "ORDER BY id DESC LIMIT $2",
          {query.category,
           std::to_string(
               std::min<std::size_t>(query.limit, std::numeric_limits<std::int64_t>::max())),
           query.since.empty() ? std::nullopt : std::optional<std::string>(query.since),
           query.status ? report_status_name(*query.status) : ""});
      std::vector<AnomalyReport> out;
      out.reserve(static_cast<std::size_t>(r.rows()));
      for (int row = 0; row < r.rows(); ++row) out.push_back(report_from(r, row));
      return out;
    });
  }

  std::optional<AnomalyReport> report(std::int64_t id) const override {
    return reads_.read([&](pg::Connection& db) -> std::optional<AnomalyReport> {
      const pg::Result r =
          db.exec(std::string("SELECT ") + kReportColumns + " FROM reports WHERE id = $1",
                  {std::to_string(id)});
      if (r.rows() == 0) return std::nullopt;
      return report_from(r, 0);
    });
  }

  ResolvedReport resolve_report(std::int64_t id, const ReportResolution& resolution,
                                const std::optional<StoredImage>& image) override {
    check_resolution(resolution);
    const auto db = writes_.lease();
    // The row lock makes racing decisions wait for this one; they then see it resolved.
    pg::Transaction t(*db);
    const pg::Result current = db->exec(
        "SELECT status, resolution, resolved_by, "
        "to_char(resolved_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') "
        "FROM reports WHERE id = $1 FOR UPDATE",
        {std::to_string(id)});
    if (current.rows() == 0) throw NotFoundError("no report " + std::to_string(id));
    if (current.text(0, 0) == report_status_name(ReportStatus::kResolved)) {
      throw already_resolved({.id = id,
                              .resolution = store::stored_resolution(current.text(0, 1)),
                              .resolved_by = current.text(0, 2),
                              .resolved_at = current.text(0, 3)});
    }
    ResolvedReport out;
    if (image) out.image_id = insert_added(*db, *image);
    const pg::Result r = db->exec(
        std::string("UPDATE reports SET status = 'resolved', resolution = $2, defect = $3, "
                    "note = $4, resolved_by = $5, resolved_at = now() WHERE id = $1 RETURNING ") +
            kReportColumns,
        {std::to_string(id), resolution_name(resolution.resolution), resolution.defect,
         resolution.note, resolution.by});
    t.commit();
    out.report = report_from(r, 0);
    return out;
  }

  void mark_applied(std::span<const std::int64_t> report_ids) override {
    const auto db = writes_.lease();
    std::string ids = "{";
    for (const auto id : report_ids) {
      if (ids.size() > 1) ids += ',';
      ids += std::to_string(id);
    }
    db->exec("UPDATE reports SET applied = true WHERE id = ANY($1::bigint[])", {ids + "}"});
  }

  std::optional<StoredImage> image(std::int64_t id) const override {
    std::vector<StoredImage> found = reads_.read(
        [&](pg::Connection& db) { return images_where(db, "id = $1", {std::to_string(id)}); });
    if (found.empty()) return std::nullopt;
    return std::move(found.front());
  }

  std::vector<StoredImage> images(const std::string& category) const override {
    return reads_.read(
        [&](pg::Connection& db) { return images_where(db, "category = $1", {category}); });
  }

  std::size_t image_count(const std::string& category) const override {
    return reads_.read([&](pg::Connection& db) -> std::size_t {
      if (!has_vector_tables(db)) return 0;
      const pg::Result r =
          db.exec("SELECT count(*) FROM images WHERE ($1 = '' OR category = $1)", {category});
      return std::stoull(r.text(0, 0));
    });
  }

  // One try within a deadline: a readiness check asks about now, and must not hang on a server
  // that accepts connections and never answers (connecting is bounded by connect_timeout).
  void ping() const override { reads_.lease()->ping(std::chrono::seconds(2)); }

  std::string kind() const override { return "postgresql"; }
  // Every host of the URL: reads and writes may each be on another one.
  std::string location() const override { return "PostgreSQL " + writes_.name(); }

 private:
  // add_image() inside the caller's transaction on `db`; returns the new id.
  std::int64_t insert_added(pg::Connection& db, const StoredImage& image) {
    ensure_vector_tables(db, image.embedding.size());
    check_dimension(image.embedding.size());
    db.exec("INSERT INTO categories (name) VALUES ($1) ON CONFLICT (name) DO NOTHING",
            {image.category});
    const pg::Result r = db.exec(
        "INSERT INTO images (path, category, split, anomalous, defect, score, verdict, embedding) "
        "VALUES ($1, $2, 'added', $3, $4, $5, $6, $7::vector) RETURNING id",
        {image.path, image.category, image.anomalous ? "true" : "false", image.defect,
         image.score ? std::optional(std::to_string(*image.score)) : std::nullopt,
         std::string(verdict_name(image.verdict)), pg::vector_text(image.embedding)});
    return std::stoll(r.text(0, 0));
  }

  // The images `condition` picks, with their embeddings, in id order.
  std::vector<StoredImage> images_where(pg::Connection& db, const std::string& condition,
                                        const pg::Params& params) const {
    std::vector<StoredImage> images;
    if (!has_vector_tables(db)) return images;
    const pg::Result r =
        db.exec(std::string("SELECT ") + kImageColumns + ", embedding::text FROM images WHERE " +
                    condition + " ORDER BY id",
                params);
    for (int row = 0; row < r.rows(); ++row) {
      images.push_back(image_from(r, row));
      images.back().embedding = pg::parse_vector(r.text(row, kImageColumnCount));
    }
    return images;
  }

  // The dimension is set by the first load, perhaps by another process after this one opened
  // (a service started before `patchvec index`): until it is known, each call looks again.
  bool has_vector_tables(pg::Connection& db) const {
    if (dimension_ == 0) {
      const pg::Result dim = db.exec("SELECT value FROM patchvec_meta WHERE key = 'dimension'");
      if (dim.rows() > 0) dimension_ = std::stoul(dim.text(0, 0));
    }
    return dimension_ != 0;
  }

  // Inside a transaction, before the first load: the embedding columns get their dimension.
  void ensure_vector_tables(pg::Connection& db, std::size_t dim) {
    if (dimension_ != 0) return;
    db.exec("SELECT pg_advisory_xact_lock(" + std::to_string(pg::kSchemaLock) + ")");
    const pg::Result existing = db.exec("SELECT value FROM patchvec_meta WHERE key = 'dimension'");
    if (existing.rows()) {
      dimension_ = std::stoul(existing.text(0, 0));
      return;
    }
    const std::string type = "vector(" + std::to_string(dim) + ")";
    db.exec("ALTER TABLE images ALTER COLUMN embedding TYPE " + type);
    db.exec("INSERT INTO patchvec_meta VALUES ('dimension', $1)", {std::to_string(dim)});
    dimension_ = dim;
  }

  void check_dimension(std::size_t dim) const {
    if (dimension_ != 0 && dim != dimension_) {
      throw Error("PostgreSQL " + reads_.name() + " holds " + std::to_string(dimension_) +
                  "-dimensional embeddings, got " + std::to_string(dim) +
                  " (a model with another backbone? use another database)");
    }
  }

  // Statements of concurrent callers run on their own connections; PostgreSQL's transactions
  // and locks keep them apart.
  mutable pg::ConnectionPool reads_;
  mutable pg::ConnectionPool writes_;
  bool exact_;
  mutable std::atomic<std::size_t> dimension_ = 0;  // set once, by the first load (any process)
};

}  // namespace

std::unique_ptr<VectorStore> open_postgres_store(const std::string& url, bool exact) {
  return std::make_unique<PostgresStore>(url, exact);
}

}  // namespace pv
