CREATE TABLE `meter_daily` (
	`bucket` text NOT NULL,
	`server_id` integer NOT NULL,
	`scope` text NOT NULL,
	`slug` text DEFAULT '' NOT NULL,
	`service` text DEFAULT '' NOT NULL,
	`seconds` real NOT NULL,
	`energy_j` real NOT NULL,
	`idle_share_j` real DEFAULT 0 NOT NULL,
	`cpu_seconds` real DEFAULT 0 NOT NULL,
	`mem_byte_seconds` real DEFAULT 0 NOT NULL,
	`net_rx_bytes` integer DEFAULT 0 NOT NULL,
	`net_tx_bytes` integer DEFAULT 0 NOT NULL,
	`blk_read_bytes` integer DEFAULT 0 NOT NULL,
	`blk_write_bytes` integer DEFAULT 0 NOT NULL,
	`method` text NOT NULL,
	`model` text NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `meter_daily_key` ON `meter_daily` (`bucket`,`server_id`,`scope`,`slug`);--> statement-breakpoint
CREATE TABLE `meter_hourly` (
	`bucket` text NOT NULL,
	`server_id` integer NOT NULL,
	`scope` text NOT NULL,
	`slug` text DEFAULT '' NOT NULL,
	`service` text DEFAULT '' NOT NULL,
	`seconds` real NOT NULL,
	`energy_j` real NOT NULL,
	`idle_share_j` real DEFAULT 0 NOT NULL,
	`cpu_seconds` real DEFAULT 0 NOT NULL,
	`mem_byte_seconds` real DEFAULT 0 NOT NULL,
	`net_rx_bytes` integer DEFAULT 0 NOT NULL,
	`net_tx_bytes` integer DEFAULT 0 NOT NULL,
	`blk_read_bytes` integer DEFAULT 0 NOT NULL,
	`blk_write_bytes` integer DEFAULT 0 NOT NULL,
	`method` text NOT NULL,
	`model` text NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `meter_hourly_key` ON `meter_hourly` (`bucket`,`server_id`,`scope`,`slug`);--> statement-breakpoint
CREATE TABLE `meter_samples` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`ts` text NOT NULL,
	`server_id` integer NOT NULL,
	`scope` text NOT NULL,
	`slug` text DEFAULT '' NOT NULL,
	`service` text DEFAULT '' NOT NULL,
	`seconds` real NOT NULL,
	`energy_j` real NOT NULL,
	`idle_share_j` real DEFAULT 0 NOT NULL,
	`cpu_seconds` real DEFAULT 0 NOT NULL,
	`mem_byte_seconds` real DEFAULT 0 NOT NULL,
	`net_rx_bytes` integer DEFAULT 0 NOT NULL,
	`net_tx_bytes` integer DEFAULT 0 NOT NULL,
	`blk_read_bytes` integer DEFAULT 0 NOT NULL,
	`blk_write_bytes` integer DEFAULT 0 NOT NULL,
	`method` text NOT NULL,
	`model` text NOT NULL
);
--> statement-breakpoint
CREATE INDEX `meter_samples_ts_idx` ON `meter_samples` (`ts`);--> statement-breakpoint
ALTER TABLE `servers` ADD `energy` text;