CREATE TABLE `meter_cumulative` (
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
	`model` text NOT NULL,
	`bucket` text NOT NULL,
	`measured_seconds` real DEFAULT 0 NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `meter_cumulative_key` ON `meter_cumulative` (`server_id`,`scope`,`slug`,`bucket`);--> statement-breakpoint
CREATE TABLE `meter_lines` (
	`server_id` integer NOT NULL,
	`scope` text NOT NULL,
	`slug` text NOT NULL,
	`service` text NOT NULL,
	`first_bucket` text NOT NULL,
	`last_bucket` text NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `meter_lines_key` ON `meter_lines` (`server_id`,`scope`,`slug`);