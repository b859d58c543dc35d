CREATE TABLE `instances` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`slug` text NOT NULL,
	`service` text NOT NULL,
	`server_id` integer NOT NULL,
	`desired` text DEFAULT 'running' NOT NULL,
	`purge` integer DEFAULT false NOT NULL,
	`image` text NOT NULL,
	`generation` integer DEFAULT 1 NOT NULL,
	`config` text NOT NULL,
	`observed` text DEFAULT 'pending' NOT NULL,
	`container_id` text,
	`last_error` text,
	`attempts` integer DEFAULT 0 NOT NULL,
	`next_attempt_at` text,
	`created_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')) NOT NULL,
	`updated_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')) NOT NULL,
	FOREIGN KEY (`server_id`) REFERENCES `servers`(`id`) ON UPDATE no action ON DELETE restrict
);
--> statement-breakpoint
CREATE UNIQUE INDEX `instances_slug_unique` ON `instances` (`slug`);--> statement-breakpoint
CREATE INDEX `instances_server_idx` ON `instances` (`server_id`);--> statement-breakpoint
CREATE TABLE `operations` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`instance_slug` text NOT NULL,
	`kind` text NOT NULL,
	`status` text DEFAULT 'pending' NOT NULL,
	`actor` text DEFAULT 'system' NOT NULL,
	`detail` text,
	`error` text,
	`created_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')) NOT NULL,
	`finished_at` text
);
--> statement-breakpoint
CREATE INDEX `operations_instance_idx` ON `operations` (`instance_slug`,`id`);--> statement-breakpoint
CREATE TABLE `servers` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`name` text NOT NULL,
	`docker_endpoint` text NOT NULL,
	`site` text DEFAULT '' NOT NULL,
	`publish_address` text DEFAULT '127.0.0.1' NOT NULL,
	`created_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')) NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `servers_name_unique` ON `servers` (`name`);