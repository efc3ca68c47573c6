-- 0002: administration groups, relocation rules, policies with locks, tasks
-- and their per-host results, saved selections, per-group status thresholds.
-- source = 'config' marks objects owned by etc/custos.d/*.conf (the API
-- refuses to change them); 'api' objects belong to the console.

CREATE TABLE groups (
  id            BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  name          VARCHAR(64) NOT NULL,
  parent_id     BIGINT UNSIGNED NOT NULL DEFAULT 0,        -- 0 = top level
  source        VARCHAR(8) NOT NULL,
  created_at    BIGINT NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY groups_sibling (parent_id, name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

ALTER TABLE hosts
  ADD COLUMN group_id BIGINT UNSIGNED NOT NULL DEFAULT 0,   -- 0 = Unassigned
  ADD COLUMN placed TINYINT NOT NULL DEFAULT 0,             -- relocation rules ran
  ADD COLUMN policy_version INT NOT NULL DEFAULT 0,
  ADD COLUMN policy_hash CHAR(64) NOT NULL DEFAULT '',
  ADD COLUMN policy_applied_version INT NOT NULL DEFAULT 0,
  ADD COLUMN policy_errors MEDIUMTEXT NULL,
  ADD COLUMN local_settings MEDIUMTEXT NULL,
  ADD COLUMN tags VARCHAR(1024) NOT NULL DEFAULT '',
  ADD KEY hosts_group (group_id);

CREATE TABLE relocation_rules (
  name          VARCHAR(64) NOT NULL,
  ord           INT NOT NULL,
  group_path    VARCHAR(2048) NOT NULL,
  hostname      VARCHAR(255) NOT NULL DEFAULT '',
  subnet        VARCHAR(64) NOT NULL DEFAULT '',
  os            VARCHAR(128) NOT NULL DEFAULT '',
  tag           VARCHAR(64) NOT NULL DEFAULT '',
  source        VARCHAR(8) NOT NULL,
  PRIMARY KEY (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE policies (
  id            BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  name          VARCHAR(128) NOT NULL,
  group_id      BIGINT UNSIGNED NOT NULL,
  application   VARCHAR(32) NOT NULL,
  kind          VARCHAR(16) NOT NULL,                      -- normal, outbreak, mobile
  active        TINYINT NOT NULL,
  inherit       TINYINT NOT NULL,
  settings      MEDIUMTEXT NOT NULL,                       -- [{key, value, locked}]
  threshold     INT NOT NULL DEFAULT 0,
  window_min    INT NOT NULL DEFAULT 0,
  quiet_min     INT NOT NULL DEFAULT 0,
  source        VARCHAR(8) NOT NULL,
  updated_at    BIGINT NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY policies_name (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE tasks (
  id            BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  name          VARCHAR(128) NOT NULL,
  type          VARCHAR(32) NOT NULL,
  params        MEDIUMTEXT NOT NULL,                       -- JSON object
  scope         MEDIUMTEXT NOT NULL,                       -- JSON: {group}|{hosts}|{selection}|{host}|{server}
  schedule      VARCHAR(255) NOT NULL,
  random_delay  INT NOT NULL DEFAULT 0,
  time_limit    INT NOT NULL DEFAULT 0,
  manual_seq    INT NOT NULL DEFAULT 0,
  cancel_seq    INT NOT NULL DEFAULT 0,
  source        VARCHAR(8) NOT NULL,
  updated_at    BIGINT NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY tasks_name (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE task_results (
  task_id       BIGINT UNSIGNED NOT NULL,
  host_id       BIGINT UNSIGNED NOT NULL,
  run           INT NOT NULL,
  state         VARCHAR(16) NOT NULL,                      -- scheduled, running, succeeded, failed, cancelled
  exit_code     INT NULL,
  output_tail   TEXT NULL,
  started       BIGINT NOT NULL DEFAULT 0,
  ended         BIGINT NOT NULL DEFAULT 0,
  updated_at    BIGINT NOT NULL,
  PRIMARY KEY (task_id, host_id, run),
  KEY task_results_host (host_id),
  CONSTRAINT task_results_host FOREIGN KEY (host_id) REFERENCES hosts (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE selections (
  name          VARCHAR(64) NOT NULL,
  filter        VARCHAR(2048) NOT NULL,
  source        VARCHAR(8) NOT NULL,
  PRIMARY KEY (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE group_thresholds (
  group_id      BIGINT UNSIGNED NOT NULL,
  db_warning_days INT NOT NULL,
  db_critical_days INT NOT NULL,
  not_connected_warning_days INT NOT NULL,
  not_connected_critical_days INT NOT NULL,
  source        VARCHAR(8) NOT NULL,
  PRIMARY KEY (group_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
