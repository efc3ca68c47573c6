-- 0001: hosts, their events, enrolment tokens, console administrators.
-- Every table is InnoDB (transactions: an event is acknowledged to its agent
-- only after the transaction that stored it committed).

CREATE TABLE hosts (
  id            BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,   -- stable id (SNMP index)
  uid           CHAR(32) NOT NULL,                         -- CN of the agent certificate
  name          VARCHAR(255) NOT NULL,                     -- unique display name (NAME, NAME-1, ...)
  hostname      VARCHAR(255) NOT NULL,                     -- what the agent reported at enrolment
  cert_serial   VARCHAR(64) NOT NULL,
  enrolled_at   BIGINT NOT NULL,                           -- unix seconds
  last_seen     BIGINT NOT NULL DEFAULT 0,
  last_ip       VARCHAR(64) NOT NULL DEFAULT '',
  wake_port     INT NOT NULL DEFAULT 0,
  status        TINYINT NOT NULL DEFAULT 0,                -- 0 OK, 1 Warning, 2 Critical
  reasons       INT UNSIGNED NOT NULL DEFAULT 0,           -- bit set, see daemon/status.h
  posture       MEDIUMTEXT NULL,                           -- last posture document (JSON)
  posture_time  BIGINT NOT NULL DEFAULT 0,
  PRIMARY KEY (id),
  UNIQUE KEY hosts_uid (uid),
  UNIQUE KEY hosts_name (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE events (
  id            BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  host_id       BIGINT UNSIGNED NOT NULL,
  event_uid     CHAR(32) NOT NULL,                         -- agent-generated; a resend is ignored
  time          BIGINT NOT NULL,
  received      BIGINT NOT NULL,
  severity      TINYINT NOT NULL,                          -- 0 critical, 1 error, 2 warning, 3 info
  kind          VARCHAR(64) NOT NULL,
  message       VARCHAR(1024) NOT NULL,
  data          MEDIUMTEXT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY events_host_uid (host_id, event_uid),
  KEY events_time (time),
  CONSTRAINT events_host FOREIGN KEY (host_id) REFERENCES hosts (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE enroll_tokens (
  name          VARCHAR(64) NOT NULL,
  secret_hash   CHAR(64) NOT NULL,                         -- SHA-256 of the token, hex
  expires_at    BIGINT NOT NULL,                           -- unix seconds, 0 = never
  max_uses      INT NOT NULL,                              -- 0 = unlimited
  uses          INT NOT NULL DEFAULT 0,
  source        VARCHAR(16) NOT NULL,                      -- 'config' or 'api'
  created_at    BIGINT NOT NULL,
  PRIMARY KEY (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE admins (
  name          VARCHAR(64) NOT NULL,
  pw_hash       CHAR(64) NOT NULL,                         -- PBKDF2-HMAC-SHA256, hex
  salt          CHAR(32) NOT NULL,
  iterations    INT NOT NULL,
  created_at    BIGINT NOT NULL,
  PRIMARY KEY (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
